/**
 * The narrow part of an `@xen-orchestra/fs` remote handler that this product uses.
 * `xo.getRemoteHandler()` (in xo-server) and `getSyncedHandler()` (in the CLI and tests) both
 * return objects that satisfy it. Paths are relative to the remote's root, `/`-separated.
 */
import type { Readable } from 'node:stream'

export type FileDescriptor = { readonly fd: unknown; readonly path: string }
export type FileRef = string | FileDescriptor

export interface RemoteHandler {
  readonly type: string
  /** files are encrypted at rest (`encryptionKey` in the remote's URL): sizes and parts of files cannot be read, whole files can */
  readonly isEncrypted?: boolean
  useVhdDirectory(): boolean
  list(dir: string, opts?: { filter?: (name: string) => boolean; ignoreMissing?: boolean; prependDir?: boolean }): Promise<string[]>
  readFile(file: string, opts?: { flags?: string }): Promise<Buffer>
  outputFile(file: string, data: Buffer | string, opts?: { dirMode?: number; flags?: string }): Promise<void>
  writeFile(file: string, data: Buffer | string, opts?: { flags?: string }): Promise<void>
  createReadStream(file: FileRef, opts?: { start?: number; end?: number; ignoreMissingChecksum?: boolean }): Promise<Readable>
  outputStream(file: string, input: Readable, opts?: { checksum?: boolean; dirMode?: number; validator?: (path: string) => Promise<void> }): Promise<void>
  openFile(file: string, flags: string): Promise<FileDescriptor>
  closeFile(fd: FileDescriptor): Promise<void>
  read(file: FileRef, buffer: Buffer, position?: number): Promise<{ bytesRead: number; buffer: Buffer }>
  write(file: FileRef, buffer: Buffer, position: number): Promise<{ bytesWritten: number; buffer: Buffer }>
  getSize(file: FileRef): Promise<number>
  rename(oldPath: string, newPath: string, opts?: { checksum?: boolean }): Promise<void>
  copy?(oldPath: string, newPath: string): Promise<void>
  unlink(file: string, opts?: { checksum?: boolean }): Promise<void>
  rmtree(dir: string): Promise<void>
  mktree(dir: string): Promise<void>
  truncate(file: string, len: number): Promise<void>
  fSync?(fd: FileDescriptor): Promise<void>
  sync(): Promise<void>
  forget(): Promise<void>
  lock(path: string): Promise<{ dispose: () => Promise<void> }>
}
