/**
 * The contents of VDIs: one sparse raw file per VDI, `<dir>/vdis/<VDI uuid>.raw`.
 *
 * A snapshot copies nothing, as on a real SR: its file starts empty and it **reads through** the
 * VDI it was taken of for every 64 KiB chunk it does not hold itself. Before a write changes a
 * chunk of a VDI, the VDI reading through it gets that chunk's current bytes (its allocated
 * extents: holes stay holes) copied into its own file and holds it from then on (copy-on-write):
 * a snapshot's contents never change, whatever is written after. A disk's own file always holds
 * the disk's whole content. When a VDI another one reads through is destroyed, the chunks the
 * reader needs are handed down to it first.
 *
 * Snapshotting a disk that already has one puts the new snapshot between them (the older reads
 * through the newer, which reads through the disk): a write copies into one VDI at most.
 *
 * Every write goes through this module (guest writes, imports), so it knows each file's data
 * extents without asking the file system again; a file changed behind its back (its mtime moved)
 * is asked again. Reads take a shared lock, writes an exclusive one: a read never sees a chunk
 * half copied. What reads through what is kept in `<dir>/vdis/overlays.json` when the pool is
 * saved, next to `pool.json`.
 */
import { createHash } from 'node:crypto'
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs'
import { mkdir, open, stat, truncate, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'

import { clip, intersect, rangesOfUnits, subtract, union } from './ranges.js'
import { blocksOf, dataExtents, dataExtentsSync, type Extent } from './sparse-extents.js'

/** the unit of copy-on-write */
export const COW_CHUNK = 64 * 1024
/** the file system's allocation unit: a write allocates the pages it touches */
const PAGE = 4096
const COPY_BUFFER = 4 * 1024 * 1024

/** a VDI that reads through another for the chunks it does not hold */
interface Overlay {
  /** uuid of the VDI read for the chunks not held */
  through: string
  /** bytes of `through` this VDI shows (its size when taken); chunks past it read as zeros */
  limit: number
  /** chunks this VDI's own file holds */
  readonly held: Set<number>
}

interface SavedOverlay {
  readonly uuid: string
  readonly through: string
  readonly limit: number
  /** held chunks as [first, end) runs */
  readonly held: readonly (readonly [number, number])[]
}

/** a piece of a read: bytes of one file (`path`) or zeros (no path) */
interface Segment {
  readonly path: string | undefined
  readonly position: number
  readonly length: number
}

/** reads one VDI's content (through whatever it reads through) */
export interface VdiReader {
  /** like FileHandle.read; fewer bytes only past the end of the disk */
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>
  close(): Promise<void>
}

/** writes into one VDI, each write copy-on-write for the VDI reading through it */
export interface VdiWriter {
  write(buffer: Buffer, offset: number, length: number, position: number): Promise<void>
  close(): Promise<void>
}

interface KnownExtents {
  extents: Extent[]
  mtimeNs: bigint
  size: bigint
}

/** many readers or one writer */
class ReadWriteLock {
  #readers = 0
  #writing = false
  readonly #waiting: { readonly write: boolean; readonly go: () => void }[] = []

  async read<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(false)
    try {
      return await fn()
    } finally {
      this.#readers--
      this.#next()
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(true)
    try {
      return await fn()
    } finally {
      this.#writing = false
      this.#next()
    }
  }

  #acquire(write: boolean): Promise<void> {
    if (this.#waiting.length === 0 && !this.#writing && (!write || this.#readers === 0)) {
      if (write) this.#writing = true
      else this.#readers++
      return Promise.resolve()
    }
    return new Promise(go => this.#waiting.push({ write, go }))
  }

  #next(): void {
    while (this.#waiting.length > 0 && !this.#writing) {
      const first = this.#waiting[0]!
      if (first.write) {
        if (this.#readers > 0) return
        this.#waiting.shift()
        this.#writing = true
        first.go()
        return
      }
      this.#waiting.shift()
      this.#readers++
      first.go()
    }
  }
}

const chunksOf = (start: number, end: number): number[] => {
  const chunks: number[] = []
  for (let chunk = Math.floor(start / COW_CHUNK); chunk * COW_CHUNK < end; chunk++) chunks.push(chunk)
  return chunks
}

const pageRange = (start: number, end: number): Extent => [Math.floor(start / PAGE) * PAGE, Math.ceil(end / PAGE) * PAGE]

async function readFully(file: FileHandle, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
  let done = 0
  while (done < length) {
    const { bytesRead } = await file.read(buffer, offset + done, length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

export class VdiFiles {
  readonly #dir: string
  /** keep the overlays in `overlays.json` (a saved pool) */
  readonly #persist: boolean
  readonly #overlays = new Map<string, Overlay>()
  readonly #extents = new Map<string, KnownExtents>()
  /** file sizes: they change only through `createEmpty` and `resize` */
  readonly #sizes = new Map<string, number>()
  /** VDIs destroyed: reading them fails */
  readonly #gone = new Set<string>()
  readonly #lock = new ReadWriteLock()
  /** readers open and writes under way: files of destroyed VDIs are removed once none is */
  #busy = 0
  readonly #removeLater: string[] = []

  constructor(dataDir: string, opts: { persist?: boolean } = {}) {
    this.#dir = join(dataDir, 'vdis')
    this.#persist = opts.persist === true
  }

  /** Creates the folder; `resume`: the pool was loaded from `pool.json`, its overlays are found again. */
  async init(opts: { resume: boolean } = { resume: false }): Promise<void> {
    await mkdir(this.#dir, { recursive: true })
    if (opts.resume && existsSync(this.#overlaysPath)) {
      const saved = JSON.parse(readFileSync(this.#overlaysPath, 'utf8')) as { overlays: SavedOverlay[] }
      for (const { uuid, through, limit, held } of saved.overlays) {
        const chunks = new Set<number>()
        for (const [first, end] of held) for (let chunk = first; chunk < end; chunk++) chunks.add(chunk)
        this.#overlays.set(uuid, { through, limit, held: chunks })
      }
    } else {
      this.#save()
    }
  }

  /**
   * The file of a VDI. A disk's file holds its whole content; a snapshot's holds only the chunks
   * its disk overwrote since (read a VDI with `reader`, `hash`).
   */
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
    this.#gone.delete(uuid)
    this.#sizes.set(uuid, size)
    const { mtimeNs, size: length } = statSync(this.path(uuid), { bigint: true })
    this.#extents.set(uuid, { extents: [], mtimeNs, size: length })
  }

  /** `VM.snapshot`, `VDI.snapshot`: `to` (a new VDI) shows `from` as it is now, copying nothing. */
  async snapshot(from: string, to: string): Promise<void> {
    await this.#lock.write(async () => {
      this.#assertPresent(from)
      const size = await this.#sizeOf(from)
      this.createEmpty(to, size)
      // the VDI that read through `from` now reads through its newer snapshot: the same bytes
      for (const reader of this.#readersOf(from)) this.#overlays.get(reader)!.through = to
      this.#overlays.set(to, { through: from, limit: size, held: new Set() })
      this.#save()
    })
  }

  /** Grows the file of a VDI to `size` bytes, keeping its content. */
  async resize(uuid: string, size: number): Promise<void> {
    await this.#lock.write(async () => {
      this.#assertPresent(uuid)
      await truncate(this.path(uuid), size)
      this.#sizes.set(uuid, size)
      await this.#noteWritten(uuid, [])
    })
  }

  /**
   * Deletes the file of a VDI (synchronously: the VDI is gone once its record is). The VDI reading
   * through it gets the chunks it needs first.
   */
  remove(uuid: string): void {
    for (const reader of this.#readersOf(uuid)) this.#handDown(uuid, reader)
    this.#overlays.delete(uuid)
    this.#extents.delete(uuid)
    this.#sizes.delete(uuid)
    this.#gone.add(uuid)
    this.#save()
    if (this.#busy > 0) this.#removeLater.push(this.path(uuid))
    else rmSync(this.path(uuid), { force: true })
  }

  /** Writes `data` at `offset`, as the guest would. */
  async write(uuid: string, offset: number, data: Buffer): Promise<void> {
    const writer = await this.writer(uuid)
    try {
      await writer.write(data, 0, data.length, offset)
    } finally {
      await writer.close()
    }
  }

  /** A writer into a VDI (an import): each write first keeps what the VDI reading through it needs. */
  async writer(uuid: string): Promise<VdiWriter> {
    this.#assertPresent(uuid)
    const file = await open(this.path(uuid), 'r+')
    this.#busy++
    let closed = false
    return {
      write: (buffer, offset, length, position) =>
        this.#lock.write(async () => {
          this.#assertPresent(uuid)
          await this.#beforeWrite(uuid, position, position + length)
          let done = 0
          while (done < length) done += (await file.write(buffer, offset + done, length - done, position + done)).bytesWritten
          await this.#noteWritten(uuid, [pageRange(position, position + length)])
        }),
      close: async () => {
        if (closed) return
        closed = true
        await file.close()
        this.#release()
      },
    }
  }

  /** A reader of a VDI's content (whatever it reads through). */
  async reader(uuid: string): Promise<VdiReader> {
    this.#assertPresent(uuid)
    this.#busy++
    const handles = new Map<string, Promise<FileHandle>>()
    const handleOf = (path: string): Promise<FileHandle> => {
      let handle = handles.get(path)
      if (handle === undefined) {
        handle = open(path, 'r')
        handles.set(path, handle)
      }
      return handle
    }
    let closed = false
    return {
      read: (buffer, offset, length, position) =>
        this.#lock.read(async () => {
          this.#assertPresent(uuid)
          const end = Math.min(position + length, await this.#sizeOf(uuid))
          if (end <= position) return 0
          for (const segment of this.#segments(uuid, position, end)) {
            const at = offset + segment.position - position
            const done = segment.path === undefined ? 0 : await readFully(await handleOf(segment.path), buffer, at, segment.length, segment.position)
            if (done < segment.length) buffer.fill(0, at + done, at + segment.length)
          }
          return end - position
        }),
      close: async () => {
        if (closed) return
        closed = true
        for (const handle of handles.values()) await (await handle.catch(() => undefined))?.close()
        this.#release()
      },
    }
  }

  /** The data extents of a VDI's content (those of what it reads through included). */
  extents(uuid: string): Promise<Extent[]> {
    return this.#lock.read(() => this.#viewExtents(uuid))
  }

  /** Indexes of the `blockSize` blocks of a VDI holding allocated data, ascending. */
  async allocatedBlocks(uuid: string, blockSize: number): Promise<number[]> {
    return blocksOf(await this.extents(uuid), blockSize)
  }

  /** sha256 (hex) of the whole content, streamed. */
  async hash(uuid: string): Promise<string> {
    const hash = createHash('sha256')
    const reader = await this.reader(uuid)
    try {
      const buffer = Buffer.alloc(COPY_BUFFER)
      for (let position = 0; ; ) {
        const bytesRead = await reader.read(buffer, 0, COPY_BUFFER, position)
        if (bytesRead === 0) break
        hash.update(buffer.subarray(0, bytesRead))
        position += bytesRead
      }
    } finally {
      await reader.close()
    }
    return hash.digest('hex')
  }

  // --- internals ---------------------------------------------------------------------------------

  get #overlaysPath(): string {
    return join(this.#dir, 'overlays.json')
  }

  #assertPresent(uuid: string): void {
    if (this.#gone.has(uuid)) throw new Error(`VDI ${uuid} was destroyed`)
  }

  async #sizeOf(uuid: string): Promise<number> {
    let size = this.#sizes.get(uuid)
    if (size === undefined) {
      size = (await stat(this.path(uuid))).size
      this.#sizes.set(uuid, size)
    }
    return size
  }

  #release(): void {
    if (--this.#busy > 0) return
    for (const path of this.#removeLater.splice(0)) rmSync(path, { force: true })
  }

  /** the VDIs reading through `uuid` */
  #readersOf(uuid: string): string[] {
    const readers: string[] = []
    for (const [reader, overlay] of this.#overlays) if (overlay.through === uuid) readers.push(reader)
    return readers
  }

  #save(): void {
    if (!this.#persist) return
    const overlays: SavedOverlay[] = [...this.#overlays].map(([uuid, { through, limit, held }]) => ({
      uuid,
      through,
      limit,
      held: rangesOfUnits(held, 1),
    }))
    const temporary = `${this.#overlaysPath}.tmp`
    writeFileSync(temporary, JSON.stringify({ overlays }))
    renameSync(temporary, this.#overlaysPath)
  }

  /** the data extents of a VDI's own file: known from our writes, or asked of the file system */
  async #fileExtents(uuid: string): Promise<Extent[]> {
    const path = this.path(uuid)
    const { mtimeNs, size } = await stat(path, { bigint: true })
    const known = this.#extents.get(uuid)
    if (known !== undefined && known.mtimeNs === mtimeNs && known.size === size) return known.extents
    const extents = await dataExtents(path)
    this.#extents.set(uuid, { extents, mtimeNs, size })
    return extents
  }

  /** our write allocated `ranges` of a VDI's file (page-aligned): its known extents follow */
  async #noteWritten(uuid: string, ranges: readonly Extent[]): Promise<void> {
    const known = this.#extents.get(uuid)
    if (known === undefined) return
    const { mtimeNs, size } = await stat(this.path(uuid), { bigint: true })
    const extents = clip(union(known.extents, ranges), 0, Number(size))
    this.#extents.set(uuid, { extents, mtimeNs, size })
  }

  #noteWrittenSync(uuid: string, ranges: readonly Extent[]): void {
    const known = this.#extents.get(uuid)
    if (known === undefined) return
    const { mtimeNs, size } = statSync(this.path(uuid), { bigint: true })
    this.#extents.set(uuid, { extents: clip(union(known.extents, ranges), 0, Number(size)), mtimeNs, size })
  }

  async #viewExtents(uuid: string): Promise<Extent[]> {
    this.#assertPresent(uuid)
    const own = await this.#fileExtents(uuid)
    const overlay = this.#overlays.get(uuid)
    if (overlay === undefined) return own
    const held = rangesOfUnits(overlay.held, COW_CHUNK)
    const under = clip(await this.#viewExtents(overlay.through), 0, overlay.limit)
    return union(intersect(own, held), subtract(under, held))
  }

  /** where the bytes `[start, end)` of a VDI's content are: decided at once, no await */
  #segments(uuid: string, start: number, end: number, out: Segment[] = []): Segment[] {
    this.#assertPresent(uuid)
    const overlay = this.#overlays.get(uuid)
    if (overlay === undefined) {
      out.push({ path: this.path(uuid), position: start, length: end - start })
      return out
    }
    for (let at = start; at < end; ) {
      const held = overlay.held.has(Math.floor(at / COW_CHUNK))
      let runEnd = (Math.floor(at / COW_CHUNK) + 1) * COW_CHUNK
      while (runEnd < end && overlay.held.has(runEnd / COW_CHUNK) === held) runEnd += COW_CHUNK
      runEnd = Math.min(runEnd, end)
      if (held) {
        out.push({ path: this.path(uuid), position: at, length: runEnd - at })
      } else {
        const shown = Math.min(runEnd, Math.max(at, overlay.limit))
        if (shown > at) this.#segments(overlay.through, at, shown, out)
        if (runEnd > shown) out.push({ path: undefined, position: shown, length: runEnd - shown })
      }
      at = runEnd
    }
    return out
  }

  /** reads `[position, position + length)` of a VDI's content (under the lock already) */
  async #readView(uuid: string, buffer: Buffer, length: number, position: number): Promise<void> {
    for (const segment of this.#segments(uuid, position, position + length)) {
      const at = segment.position - position
      let done = 0
      if (segment.path !== undefined) {
        const file = await open(segment.path, 'r')
        try {
          done = await readFully(file, buffer, at, segment.length, segment.position)
        } finally {
          await file.close()
        }
      }
      if (done < segment.length) buffer.fill(0, at + done, at + segment.length)
    }
  }

  /** copies the allocated bytes of `source`'s content over `chunks` (below `limit`) into `target`'s file */
  async #copyChunks(source: string, target: string, chunks: readonly number[], limit: number): Promise<void> {
    const wanted = clip(rangesOfUnits(chunks, COW_CHUNK), 0, limit)
    const extents = intersect(await this.#viewExtents(source), wanted)
    if (extents.length > 0) {
      const file = await open(this.path(target), 'r+')
      try {
        const buffer = Buffer.allocUnsafe(Math.min(COPY_BUFFER, extents.reduce((max, [s, e]) => Math.max(max, e - s), 0)))
        for (const [start, end] of extents) {
          for (let at = start; at < end; ) {
            const length = Math.min(buffer.length, end - at)
            await this.#readView(source, buffer, length, at)
            await file.write(buffer, 0, length, at)
            at += length
          }
        }
      } finally {
        await file.close()
      }
      await this.#noteWritten(target, extents.map(([s, e]) => pageRange(s, e)))
    }
  }

  /**
   * Before `[start, end)` of a VDI is written: the VDI reading through it copies the chunks'
   * bytes of now, and if the VDI itself reads through another, it first holds the chunks whole.
   */
  async #beforeWrite(uuid: string, start: number, end: number): Promise<void> {
    const chunks = chunksOf(start, end)
    let changed = false
    // recomputed after each copy: a VDI destroyed meanwhile may have changed who reads through whom
    for (;;) {
      const pending = this.#readersOf(uuid)
        .map(reader => {
          const overlay = this.#overlays.get(reader)!
          return { reader, overlay, missing: chunks.filter(chunk => !overlay.held.has(chunk) && chunk * COW_CHUNK < overlay.limit) }
        })
        .find(({ missing }) => missing.length > 0)
      if (pending === undefined) break
      await this.#copyChunks(uuid, pending.reader, pending.missing, pending.overlay.limit)
      for (const chunk of pending.missing) pending.overlay.held.add(chunk)
      changed = true
    }
    const overlay = this.#overlays.get(uuid)
    if (overlay !== undefined) {
      const missing = chunks.filter(chunk => !overlay.held.has(chunk))
      const shown = missing.filter(chunk => chunk * COW_CHUNK < overlay.limit)
      if (shown.length > 0) await this.#copyChunks(overlay.through, uuid, shown, overlay.limit)
      for (const chunk of missing) overlay.held.add(chunk)
      changed ||= missing.length > 0
    }
    if (changed) this.#save()
  }

  /** `from` goes: `reader`, which read through it, gets from it what it needs (blocking) */
  #handDown(from: string, reader: string): void {
    const overlay = this.#overlays.get(reader)!
    const fromOverlay = this.#overlays.get(from)
    const readerHeld = rangesOfUnits(overlay.held, COW_CHUNK)
    // `from` reading through another: the reader takes the chunks `from` holds, and reads through what `from` did
    const taken = fromOverlay === undefined ? undefined : [...fromOverlay.held].filter(chunk => !overlay.held.has(chunk) && chunk * COW_CHUNK < overlay.limit)
    const wanted = taken === undefined ? subtract([[0, overlay.limit]], readerHeld) : clip(rangesOfUnits(taken, COW_CHUNK), 0, overlay.limit)
    const extents = wanted.length === 0 ? [] : intersect(dataExtentsSync(this.path(from)), wanted)
    if (extents.length > 0) {
      const source = openSync(this.path(from), 'r')
      const target = openSync(this.path(reader), 'r+')
      try {
        const buffer = Buffer.allocUnsafe(COPY_BUFFER)
        for (const [start, end] of extents) {
          for (let at = start; at < end; ) {
            const length = readSync(source, buffer, 0, Math.min(COPY_BUFFER, end - at), at)
            if (length === 0) break
            writeSync(target, buffer, 0, length, at)
            at += length
          }
        }
      } finally {
        closeSync(source)
        closeSync(target)
      }
      this.#noteWrittenSync(reader, extents.map(([s, e]) => pageRange(s, e)))
    }
    if (fromOverlay === undefined) {
      // `from` held everything: the reader now holds all it shows
      this.#overlays.delete(reader)
    } else {
      for (const chunk of taken!) overlay.held.add(chunk)
      overlay.through = fromOverlay.through
      overlay.limit = Math.min(overlay.limit, fromOverlay.limit)
    }
  }
}
