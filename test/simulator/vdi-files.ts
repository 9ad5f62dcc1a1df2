/**
 * The contents of VDIs: one sparse raw file per VDI, `<dir>/vdis/<VDI uuid>.raw`. Anyone may write
 * into a file (the guest, a test, dd); snapshots and exports read it as it is at that moment.
 */
import { createHash } from 'node:crypto'
import { closeSync, createReadStream, ftruncateSync, openSync, rmSync } from 'node:fs'
import { mkdir, open, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'

import { dataExtents } from './sparse-extents.js'

const COPY_CHUNK = 4 * 1024 * 1024

export class VdiFiles {
  readonly #dir: string

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'vdis')
  }

  async init(): Promise<void> {
    await mkdir(this.#dir, { recursive: true })
  }

  path(uuid: string): string {
    return join(this.#dir, `${uuid}.raw`)
  }

  /**
   * Creates the empty (sparse) file of a new VDI. Synchronous, so that creating a VM with its
   * disks answers at once; it costs one open and one truncate whatever the size.
   */
  createEmpty(uuid: string, size: number): void {
    const fd = openSync(this.path(uuid), 'w')
    try {
      ftruncateSync(fd, size)
    } finally {
      closeSync(fd)
    }
  }

  /** Grows the file of a VDI to `size` bytes, keeping its content. */
  async resize(uuid: string, size: number): Promise<void> {
    await truncate(this.path(uuid), size)
  }

  /** Deletes the file of a VDI (synchronously: the VDI is gone once its record is). */
  remove(uuid: string): void {
    rmSync(this.path(uuid), { force: true })
  }

  /** Writes `data` at `offset`, as the guest would. */
  async write(uuid: string, offset: number, data: Buffer): Promise<void> {
    const file = await open(this.path(uuid), 'r+')
    try {
      await file.write(data, 0, data.length, offset)
    } finally {
      await file.close()
    }
  }

  /** Copies the allocated extents of `from` into a new sparse file `to` of the same size. */
  async copy(from: string, to: string): Promise<void> {
    const source = await open(this.path(from), 'r')
    const target = await open(this.path(to), 'w')
    try {
      const { size } = await source.stat()
      await target.truncate(size)
      const buffer = Buffer.alloc(COPY_CHUNK)
      for (const [start, end] of await dataExtents(this.path(from))) {
        for (let offset = start; offset < end; ) {
          const { bytesRead } = await source.read(buffer, 0, Math.min(COPY_CHUNK, end - offset), offset)
          if (bytesRead === 0) break
          await target.write(buffer, 0, bytesRead, offset)
          offset += bytesRead
        }
      }
    } finally {
      await Promise.all([source.close(), target.close()])
    }
  }

  /** sha256 (hex) of the whole raw content, streamed. */
  async hash(uuid: string): Promise<string> {
    const hash = createHash('sha256')
    await pipeline(createReadStream(this.path(uuid)), hash)
    return hash.digest('hex')
  }
}
