/**
 * Removes a VHD written by a run that did not commit: a VHD file, or a VHD directory and the
 * alias that points to it, and its block-checksum sidecar. A path already gone is not an error.
 */
import { posix } from 'node:path'
import { removeSidecar } from '../repository/integrity/sidecar.js'
import { normalizePath } from '../repository/layout.js'
import type { RemoteHandler } from '../repository/remote-handler.js'

function isMissing(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'code' in error && error.code === 'ENOENT'
}

async function ignoreMissing(operation: Promise<void>): Promise<void> {
  try {
    await operation
  } catch (error) {
    if (!isMissing(error)) {
      throw error
    }
  }
}

export async function removeVhd(handler: RemoteHandler, path: string): Promise<void> {
  if (path.endsWith('.alias.vhd')) {
    let target: string | undefined
    try {
      const content = (await handler.readFile(path)).toString('utf8').trim()
      target = content.startsWith('/') ? normalizePath(content) : normalizePath(posix.join(posix.dirname(path), content))
    } catch (error) {
      if (!isMissing(error)) {
        throw error
      }
    }
    if (target !== undefined) {
      await handler.rmtree(target)
    }
  }
  await ignoreMissing(handler.unlink(path))
  await removeSidecar(handler, path)
}
