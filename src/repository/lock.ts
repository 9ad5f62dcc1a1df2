/**
 * The lock of a VM folder's chains: one writer, or readers. Two layers:
 * - within this process, per handler and VM folder: a writer (a backup run, a deletion, a merge
 *   being finished), or any number of readers sharing it (restores, chain reads, `verify`);
 * - across processes, `handler.lock(<vm folder>)`: on local, NFS and SMB remotes
 *   `@xen-orchestra/fs` takes a `proper-lockfile` lock (a `<vm uuid>.lock` folder beside the VM
 *   folder, refreshed while held, considered stale after 10 s without refresh), the same lock
 *   Xen Orchestra's own backups take, so they exclude each other too. The readers of one process
 *   hold it once between them; readers of two processes take turns. Nothing else is written:
 *   no file appears in the VM folder (Xen Orchestra's clean-up deletes files it does not know).
 *   On remotes without a real lock (S3, Azure) the handler's lock is a no-op: only the
 *   in-process layer holds there.
 *
 * A second writer does not wait: it fails at once with `BackupError('CHAIN_LOCKED')`, as does a
 * writer while readers hold the chain. A reader waits while a writer holds it (a backup run and
 * its merges), up to a timeout, then fails with `CHAIN_LOCKED` saying what it waited for: a
 * reader never sees a chain in the middle of a merge.
 */
import { BackupError } from '../errors.js'
import { vmDir } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'

/** how long a reader waits for a writer, unless told otherwise */
export const DEFAULT_READ_LOCK_TIMEOUT_MS = 15 * 60_000

/** pause between two attempts at a lock another process holds */
const CROSS_PROCESS_RETRY_MS = 1000

interface FolderState {
  writer: boolean
  readers: number
  /** the cross-process lock the readers share, while they hold it */
  remote?: { dispose(): Promise<void> }
  /** a reader taking the cross-process lock for the readers */
  acquiring?: Promise<void>
  /** woken whenever the folder is released */
  waiters: Set<() => void>
}

const foldersByHandler = new WeakMap<RemoteHandler, Map<string, FolderState>>()

function stateOf(handler: RemoteHandler, dir: string): FolderState {
  let folders = foldersByHandler.get(handler)
  if (folders === undefined) {
    folders = new Map()
    foldersByHandler.set(handler, folders)
  }
  let state = folders.get(dir)
  if (state === undefined) {
    state = { writer: false, readers: 0, waiters: new Set() }
    folders.set(dir, state)
  }
  return state
}

function wake(state: FolderState): void {
  for (const waiter of [...state.waiters]) waiter()
}

function locked(vmUuid: string, detail: string, cause?: unknown): BackupError {
  return new BackupError(
    'CHAIN_LOCKED',
    `the backup chain of VM ${vmUuid} is ${detail}; try again when it is done`,
    { vm: vmUuid },
    cause === undefined ? undefined : { cause },
  )
}

function isLockedError(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === 'ELOCKED'
}

/** the remote may be read but not written here (a read-only mount, an S3 key without write access) */
export function isReadOnlyError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code
  return code === 'EROFS' || code === 'EACCES' || code === 'EPERM' || (error as { name?: unknown } | undefined)?.name === 'AccessDenied'
}

async function takeRemoteLock(handler: RemoteHandler, dir: string): Promise<{ dispose(): Promise<void> }> {
  // proper-lockfile locks an existing path
  await handler.mktree(dir)
  return handler.lock(dir)
}

/** runs `fn` holding the write lock of `vmUuid`'s folder; throws CHAIN_LOCKED if a writer or a reader holds it */
export async function withChainLock<T>(handler: RemoteHandler, vmUuid: string, fn: () => Promise<T>): Promise<T> {
  const dir = vmDir(vmUuid)
  const state = stateOf(handler, dir)
  if (state.writer) throw locked(vmUuid, 'being written by another task of this process')
  if (state.readers > 0 || state.acquiring !== undefined) throw locked(vmUuid, 'being read by a restore or a verify of this process')
  state.writer = true
  try {
    let lock: { dispose(): Promise<void> }
    try {
      lock = await takeRemoteLock(handler, dir)
    } catch (error) {
      if (isLockedError(error)) throw locked(vmUuid, 'being written by another process (or read by one)', error)
      throw error
    }
    try {
      return await fn()
    } finally {
      await lock.dispose()
    }
  } finally {
    state.writer = false
    wake(state)
  }
}

export interface ReadLockOptions {
  /** how long to wait for a writer before failing with CHAIN_LOCKED (default 15 minutes) */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** how the wait for another process is paced (tests drive it); default: a timer */
  readonly pause?: (ms: number, signal?: AbortSignal) => Promise<void>
  /** called once when the reader has to wait, with what it waits for */
  onWait?(detail: string): void
}

function timerPause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Takes a read lock of `vmUuid`'s folder: shared with the other readers of this process, waiting
 * while a writer holds it (up to `timeoutMs`). Resolves to the function that releases it (call it
 * once).
 */
export async function acquireChainReadLock(handler: RemoteHandler, vmUuid: string, opts: ReadLockOptions = {}): Promise<() => Promise<void>> {
  const dir = vmDir(vmUuid)
  const state = stateOf(handler, dir)
  const timeoutMs = opts.timeoutMs ?? DEFAULT_READ_LOCK_TIMEOUT_MS
  const pause = opts.pause ?? timerPause
  const deadline = Date.now() + timeoutMs
  let told = false
  const waitFor = async (detail: string, next: Promise<void>): Promise<void> => {
    if (!told) {
      told = true
      opts.onWait?.(detail)
    }
    if (Date.now() >= deadline) {
      throw locked(vmUuid, `${detail}; this read waited ${Math.round(timeoutMs / 1000)} s for it and gave up, nothing was read`)
    }
    opts.signal?.throwIfAborted()
    await next
    opts.signal?.throwIfAborted()
  }
  const released = (): Promise<void> =>
    new Promise(resolve => {
      const waiter = () => {
        state.waiters.delete(waiter)
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', waiter)
        resolve()
      }
      // woken by the release, at the deadline to give up, or when the read is cancelled
      const timer = setTimeout(waiter, Math.max(0, deadline - Date.now()))
      timer.unref?.()
      state.waiters.add(waiter)
      opts.signal?.addEventListener('abort', waiter, { once: true })
    })

  for (;;) {
    if (state.writer) {
      await waitFor('being written by a backup run (or its merge) of this process', released())
      continue
    }
    if (state.readers > 0 && state.remote !== undefined) break
    if (state.acquiring !== undefined) {
      await state.acquiring.catch(() => {})
      continue
    }
    let failure: unknown
    const acquiring = takeRemoteLock(handler, dir).then(
      lock => void (state.remote = lock),
      error => void (failure = error),
    )
    state.acquiring = acquiring
    await acquiring
    state.acquiring = undefined
    if (failure === undefined) break
    wake(state)
    // a remote this process may only read: no writer of this process can be on it either, and one
    // of another process cannot be kept out from here; the read goes on under the process's lock
    if (isReadOnlyError(failure)) break
    if (!isLockedError(failure)) throw failure
    await waitFor('being written by another process (or read by one)', pause(Math.min(CROSS_PROCESS_RETRY_MS, Math.max(0, deadline - Date.now())), opts.signal))
  }
  state.readers++
  let done = false
  return async () => {
    if (done) return
    done = true
    state.readers--
    if (state.readers === 0 && state.remote !== undefined) {
      const lock = state.remote
      state.remote = undefined
      await lock.dispose().catch(() => {})
    }
    wake(state)
  }
}

/** runs `fn` holding a read lock of `vmUuid`'s folder (see `acquireChainReadLock`) */
export async function withChainReadLock<T>(handler: RemoteHandler, vmUuid: string, fn: () => Promise<T>, opts: ReadLockOptions = {}): Promise<T> {
  const release = await acquireChainReadLock(handler, vmUuid, opts)
  try {
    return await fn()
  } finally {
    await release()
  }
}
