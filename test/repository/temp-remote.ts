/** a fresh `file://` remote in a temporary folder, removed on close */
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

interface XoFs {
  getSyncedHandler(remote: { url: string }): Promise<{ value: RemoteHandler; dispose(): Promise<void> }>
}
const { getSyncedHandler } = createRequire(import.meta.url)('@xen-orchestra/fs') as XoFs

export interface TempRemote {
  readonly handler: RemoteHandler
  /** the local folder behind the remote */
  readonly root: string
  close(): Promise<void>
}

export async function openTempRemote(): Promise<TempRemote> {
  const root = await mkdtemp(join(tmpdir(), 'cd-remote-'))
  const { value: handler, dispose } = await getSyncedHandler({ url: 'file://' + root })
  return {
    handler,
    root,
    async close() {
      await dispose()
      await rm(root, { recursive: true, force: true })
    },
  }
}
