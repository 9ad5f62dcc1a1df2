/**
 * Durability primitives for the merge: flush a file's data to stable storage, flush a folder's
 * entries after a rename, and replace a small file atomically. They work through the remote
 * handler; on a local remote (`file://`), where the handler has no `fSync`, the descriptor it
 * returns is a plain OS file descriptor, which is flushed with `fsync(2)` directly.
 */
import { close, fsync, open } from 'node:fs'
import { promisify } from 'node:util'
import type { FileDescriptor, RemoteHandler } from '../remote-handler.js'

const fsyncAsync = promisify(fsync)
const openAsync = promisify(open)
const closeAsync = promisify(close)

interface LocalHandler {
  type: string
  getRealPath(): string
}

function localRoot(handler: RemoteHandler): string | undefined {
  const local = handler as unknown as Partial<LocalHandler>
  return handler.type === 'file' && typeof local.getRealPath === 'function' ? local.getRealPath() : undefined
}

/** Flush what was written through `fd` to stable storage. */
export async function syncFile(handler: RemoteHandler, fd: FileDescriptor): Promise<void> {
  if (handler.fSync !== undefined) {
    await handler.fSync(fd)
  } else if (typeof fd.fd === 'number' && localRoot(handler) !== undefined) {
    await fsyncAsync(fd.fd)
  }
  // other remotes (S3, Azure) have no partial writes: a completed request is durable
}

/** Flush a folder's entries (a rename or an unlink in it) on a local remote. */
export async function syncDir(handler: RemoteHandler, dir: string): Promise<void> {
  const root = localRoot(handler)
  if (root === undefined) {
    return
  }
  const fd = await openAsync(root + '/' + dir.replace(/^\/+/, ''), 'r')
  try {
    await fsyncAsync(fd)
  } finally {
    await closeAsync(fd)
  }
}

/** Flush a whole file, by path. */
export async function syncPath(handler: RemoteHandler, path: string): Promise<void> {
  if (handler.fSync === undefined && localRoot(handler) === undefined) {
    return
  }
  const fd = await handler.openFile(path, 'r+')
  try {
    await syncFile(handler, fd)
  } finally {
    await handler.closeFile(fd)
  }
}

function dirOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i === -1 ? '.' : path.slice(0, i)
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** object stores: a PUT replaces an object whole or not at all, and is durable once answered */
const OBJECT_STORES = new Set(['s3', 'azure', 'azurite'])

/**
 * Replace `path` with `data` so that a crash leaves either the old content or the new one:
 * written beside it under a temporary name, flushed, then renamed over it. On an object store,
 * one write does that (a rename there is a copy and a delete: two more requests for nothing).
 */
export async function replaceFileAtomically(
  handler: RemoteHandler,
  path: string,
  data: Buffer | string,
  opts: { durable?: boolean } = {},
): Promise<void> {
  if (OBJECT_STORES.has(handler.type)) {
    await handler.writeFile(path, data, { flags: 'w' })
    return
  }
  const durable = opts.durable !== false
  const dir = dirOf(path)
  const tmp = `${dir}/.${baseOf(path)}.tmp`
  await handler.writeFile(tmp, data, { flags: 'w' })
  if (durable) {
    await syncPath(handler, tmp)
  }
  await handler.rename(tmp, path)
  if (durable) {
    await syncDir(handler, dir)
  }
}
