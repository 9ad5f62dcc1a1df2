/**
 * One writer per VM folder. Two layers:
 * - within this process, a set of the VM folders being written (per handler);
 * - across processes, `handler.lock(<vm folder>)`: on local, NFS and SMB remotes
 *   `@xen-orchestra/fs` takes a `proper-lockfile` lock (a `<vm uuid>.lock` folder beside the VM
 *   folder, refreshed while held, considered stale after 10 s without refresh), the same lock
 *   Xen Orchestra's own backups take, so they exclude each other too. On remotes without a real
 *   lock (S3, Azure) the handler's lock is a no-op: only the in-process layer holds there.
 *
 * A second writer does not wait: it fails at once with `BackupError('CHAIN_LOCKED')`.
 */
import { BackupError } from '../errors.js'
import { vmDir } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'

const heldByHandler = new WeakMap<RemoteHandler, Set<string>>()

function locked(vmUuid: string, detail: string, cause?: unknown): BackupError {
  return new BackupError(
    'CHAIN_LOCKED',
    `the backup chain of VM ${vmUuid} is being written by ${detail}; try again when it is done`,
    { vm: vmUuid },
    cause === undefined ? undefined : { cause },
  )
}

/** runs `fn` holding the write lock of `vmUuid`'s folder; throws CHAIN_LOCKED if another writer holds it */
export async function withChainLock<T>(handler: RemoteHandler, vmUuid: string, fn: () => Promise<T>): Promise<T> {
  const dir = vmDir(vmUuid)
  let held = heldByHandler.get(handler)
  if (held === undefined) {
    held = new Set()
    heldByHandler.set(handler, held)
  }
  if (held.has(dir)) throw locked(vmUuid, 'another task of this process')
  held.add(dir)
  try {
    // proper-lockfile locks an existing path
    await handler.mktree(dir)
    let lock: { dispose(): Promise<void> }
    try {
      lock = await handler.lock(dir)
    } catch (error) {
      if ((error as { code?: string }).code === 'ELOCKED') throw locked(vmUuid, 'another process', error)
      throw error
    }
    try {
      return await fn()
    } finally {
      await lock.dispose()
    }
  } finally {
    held.delete(dir)
  }
}
