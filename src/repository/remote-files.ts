/** Small questions about files on a remote that `@xen-orchestra/fs` does not answer directly. */
import { posix } from 'node:path'
import type { RemoteHandler } from './remote-handler.js'

/** whether a file or folder named `path` exists (listing its parent: works on every remote kind) */
export async function exists(handler: RemoteHandler, path: string): Promise<boolean> {
  const names = await handler.list(posix.dirname(path), { ignoreMissing: true })
  return names.includes(posix.basename(path))
}
