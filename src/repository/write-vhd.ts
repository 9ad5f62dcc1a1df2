/**
 * Streams an exported VHD (XAPI's `export_raw_vdi?format=vhd`: a dynamic VHD for a full, a
 * differencing VHD of whole blocks for a delta) to the remote, block by block, never holding
 * the disk in memory.
 *
 * The export is parsed and re-laid out canonically (see canonical-vhd.ts) with:
 * - the footer UUID set to the snapshot VDI's uuid (what ties the chain to its reference snapshot);
 * - for a delta, the header's parent UUID set to the parent's footer UUID, its parent unicode
 *   name and parent locator 0 (W2KU) set to the parent's name relative to this VHD's folder
 *   (what vhd-lib's `chainVhd` and `VhdSynthetic.fromVhdChain` use).
 *
 * `<name>.vhd` is written as a VHD file through a hidden temporary name, renamed at the end.
 * `<name>.alias.vhd` is written as a VHD directory `data/<name>.vhd/` (header, footer, bat,
 * parentLocatorEntry0, blocks/<id/1000>/<id%1000>, as vhd-lib's VhdDirectory lays it out),
 * and the alias last. On failure, everything written is removed.
 *
 * While the VHD streams in, a sha256 of each block (bitmap + data, as stored) and of the footer,
 * header, BAT and parent locator as written is taken (integrity/block-checksums.ts): the list is
 * written as the VHD's sidecar once the VHD is whole, and its digest returned for the metadata.
 * Nothing is read back.
 */
import { Readable } from 'node:stream'
import { BackupError } from '../errors.js'
import { canonicalHead, blockOrderOfBat, copyHeader } from './canonical-vhd.js'
import { BlockChecksumsBuilder, type BlockChecksums } from './integrity/block-checksums.js'
import { removeSidecar, writeSidecar } from './integrity/sidecar.js'
import { normalizePath, relativeName, vhdDataPath } from './layout.js'
import { exists } from './remote-files.js'
import type { RemoteHandler } from './remote-handler.js'
import {
  Constants,
  VhdAbstract,
  VhdDirectory,
  computeFullBlockSize,
  openVhd,
  packFooter,
  packHeader,
  parseUuid,
  parseVhdStream,
  type VhdFooter,
  type VhdHeader,
  type VhdStreamItem,
} from './vhd-lib.js'

const { DISK_TYPES, PARENT_LOCATOR_ENTRIES, PLATFORMS, SECTOR_SIZE } = Constants

export interface WriteVhdOptions {
  /** footer UUID to set: the snapshot VDI's uuid */
  readonly uuid: string
  /** path (from the remote root) of the parent VHD, for a delta */
  readonly parent?: string
  readonly signal?: AbortSignal
  /** bytes written so far */
  onProgress?(bytes: number): void
  /**
   * told once, as soon as the export's BAT arrives and before any block does: the bytes the VHD
   * will have (its blocks × the block size, plus its head and footer), what progress is measured against
   */
  onSize?(bytes: number): void
}

export interface WriteVhdResult {
  /** bytes of the canonical VHD (the file's size for a VHD file) */
  readonly size: number
  /** digest (sha256, hex) of the VHD's block-checksum list, as its metadata records it */
  readonly checksum: string
  readonly blockChecksums: BlockChecksums
}

interface ParentInfo {
  readonly uuid: Buffer
  readonly timestamp: number
  /** name relative to the child's folder */
  readonly name: string
}

/** the footer, header and BAT of a VHD file as written, and its locator data */
interface RawHead {
  readonly footer: Buffer
  readonly header: Buffer
  readonly bat: Buffer
}

type Piece =
  | {
      readonly kind: 'head'
      readonly buffer: Buffer
      readonly footer: VhdFooter
      readonly header: VhdHeader
      readonly order: readonly number[]
      readonly raw: RawHead
      readonly locator?: Buffer
      /** bytes of the whole canonical VHD: its head, every block the BAT lists, the footer */
      readonly total: number
    }
  | { readonly kind: 'block'; readonly buffer: Buffer; readonly id: number }
  | { readonly kind: 'tail'; readonly buffer: Buffer }

async function readParent(handler: RemoteHandler, childPath: string, parentPath: string): Promise<ParentInfo> {
  try {
    const disposable = await openVhd(handler, parentPath, { flags: 'r' })
    try {
      const { footer } = disposable.value
      return { uuid: Buffer.from(footer.uuid), timestamp: footer.timestamp, name: relativeName(childPath, parentPath) }
    } finally {
      await disposable.dispose()
    }
  } catch (error) {
    throw new BackupError('CHAIN_BROKEN', `cannot read the parent VHD ${parentPath}: ${(error as Error).message}`, { parent: parentPath }, { cause: error })
  }
}

/** the export, re-laid out canonically with our footer UUID and parent fields */
async function* canonicalPieces(items: AsyncIterable<VhdStreamItem>, uuid: Buffer, parent: ParentInfo | undefined): AsyncGenerator<Piece> {
  let footer: VhdFooter | undefined
  let header: VhdHeader | undefined
  let order: number[] = []
  let next = 0
  for await (const item of items) {
    switch (item.type) {
      case 'footer': {
        const expected = parent === undefined ? DISK_TYPES.DYNAMIC : DISK_TYPES.DIFFERENCING
        if (item.footer.diskType !== expected) {
          throw new BackupError(
            'TRANSFER_FAILED',
            `expected a ${parent === undefined ? 'dynamic (full)' : 'differencing (delta)'} VHD, the export has disk type ${item.footer.diskType}`,
          )
        }
        footer = { ...item.footer, uuid, dataOffset: SECTOR_SIZE }
        break
      }
      case 'header': {
        header = copyHeader(item.header)
        for (let i = 0; i < PARENT_LOCATOR_ENTRIES; i++) {
          header.parentLocatorEntry[i] = { platformCode: PLATFORMS.NONE, platformDataSpace: 0, platformDataLength: 0, reserved: 0, platformDataOffset: 0 }
        }
        header.parentUuid = parent?.uuid ?? Buffer.alloc(16)
        header.parentTimestamp = parent?.timestamp ?? 0
        header.parentUnicodeName = parent?.name ?? ''
        break
      }
      case 'parentLocator':
        // the export's locators describe the source SR's files: replaced by ours
        break
      case 'bat': {
        if (footer === undefined || header === undefined) throw new BackupError('TRANSFER_FAILED', 'VHD stream: BAT before footer and header')
        order = blockOrderOfBat(item.buffer, header.maxTableEntries)
        let locator: Buffer | undefined
        const locators: (Buffer | undefined)[] = []
        if (parent !== undefined) {
          locator = Buffer.from(parent.name, 'utf16le')
          header.parentLocatorEntry[0] = {
            platformCode: PLATFORMS.W2KU,
            platformDataSpace: Math.ceil(locator.length / SECTOR_SIZE),
            platformDataLength: locator.length,
            reserved: 0,
            platformDataOffset: 0,
          }
          locators[0] = locator
        }
        const head = canonicalHead(footer, header, locators, order, computeFullBlockSize(header.blockSize))
        const raw = { footer: head.pieces[0]!, header: head.pieces[1]!, bat: head.pieces[2]! }
        const total = head.pieces.reduce((sum, piece) => sum + piece.length, 0) + order.length * computeFullBlockSize(header.blockSize) + SECTOR_SIZE
        for (const buffer of head.pieces) {
          yield { kind: 'head', buffer, footer, header: head.header, order, raw, total, ...(locator === undefined ? {} : { locator }) }
        }
        break
      }
      case 'block': {
        if (order[next] !== item.id) {
          throw new BackupError('TRANSFER_FAILED', `VHD stream: unexpected block ${item.id} (expected ${order[next]})`)
        }
        next++
        yield { kind: 'block', buffer: item.buffer, id: item.id }
        break
      }
    }
  }
  if (footer === undefined || next !== order.length) {
    throw new BackupError('TRANSFER_FAILED', `VHD stream ended early: ${next} of ${order.length} blocks`)
  }
  // the parser checked that the export's two footers match; ours is the first piece again
  yield { kind: 'tail', buffer: packFooter(footer) }
}

function cancelled(signal: AbortSignal): BackupError {
  return new BackupError('CANCELLED', 'VHD transfer cancelled', {}, { cause: signal.reason })
}

function newBuilder(header: VhdHeader, parent: string): BlockChecksumsBuilder {
  return new BlockChecksumsBuilder({ blockSize: header.blockSize, maxTableEntries: header.maxTableEntries, parent })
}

async function writeVhdFile(handler: RemoteHandler, path: string, pieces: AsyncIterable<Piece>, parent: string): Promise<BlockChecksums> {
  let builder: BlockChecksumsBuilder | undefined
  async function* bytes() {
    for await (const piece of pieces) {
      if (piece.kind === 'head' && builder === undefined) {
        builder = newBuilder(piece.header, parent)
        builder.setStructures({ ...piece.raw, locators: [piece.locator] })
      } else if (piece.kind === 'block') {
        builder!.addBlock(piece.id, piece.buffer)
      }
      yield piece.buffer
    }
  }
  // outputStream writes to a hidden temporary file and renames it, or removes it on error
  await handler.outputStream(path, Readable.from(bytes(), { objectMode: false }), { checksum: false })
  return builder!.build()
}

/** the `bat` chunk vhd-lib's VhdDirectory writes: one bit per BAT entry, set for each block written */
function directoryBat(maxTableEntries: number, ids: Iterable<number>): Buffer {
  const bat = Buffer.alloc(maxTableEntries)
  for (const id of ids) bat[id >> 3] |= 0x80 >> (id & 7)
  return bat
}

/** block files written at once to a VHD directory (each holds one 2 MiB block in memory) */
const DIRECTORY_WRITE_CONCURRENCY = 8

/** at most `limit` writes in flight; the first failure is rethrown by the next `add` or `drain` */
class BoundedWrites {
  readonly #limit: number
  readonly #pending = new Set<Promise<void>>()
  #failure: { error: unknown } | undefined

  constructor(limit: number) {
    this.#limit = limit
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error
  }

  async add(write: Promise<void>): Promise<void> {
    const tracked: Promise<void> = write.then(
      () => void this.#pending.delete(tracked),
      error => {
        this.#failure ??= { error }
        this.#pending.delete(tracked)
      },
    )
    this.#pending.add(tracked)
    while (this.#pending.size >= this.#limit) await Promise.race(this.#pending)
    this.#throwIfFailed()
  }

  async drain(): Promise<void> {
    await this.settle()
    this.#throwIfFailed()
  }

  /** waits for every write in flight, whatever their outcome */
  async settle(): Promise<void> {
    await Promise.all(this.#pending)
  }
}

async function writeVhdDirectory(handler: RemoteHandler, aliasPath: string, pieces: AsyncIterable<Piece>, parent: string): Promise<BlockChecksums> {
  const dataPath = vhdDataPath(aliasPath)
  if (await exists(handler, dataPath)) {
    throw new BackupError('TRANSFER_FAILED', `refusing to overwrite the existing VHD directory ${dataPath}`, { path: dataPath })
  }
  let builder: BlockChecksumsBuilder | undefined
  let order: readonly number[] = []
  const writes = new BoundedWrites(DIRECTORY_WRITE_CONCURRENCY)
  try {
    const disposable = await VhdDirectory.create(handler, dataPath, { flags: 'wx' })
    const vhd = disposable.value
    let locator: Buffer | undefined
    let headerSet = false
    for await (const piece of pieces) {
      if (piece.kind === 'head') {
        if (headerSet) continue
        headerSet = true
        order = piece.order
        locator = piece.locator
        builder = newBuilder(piece.header, parent)
        vhd.footer = piece.footer
        // a VHD directory keeps locator data in its own chunk: no offset
        const header = copyHeader(piece.header)
        for (const entry of header.parentLocatorEntry) entry.platformDataOffset = 0
        vhd.header = header
      } else if (piece.kind === 'block') {
        builder!.addBlock(piece.id, piece.buffer)
        await writes.add(vhd.writeEntireBlock({ id: piece.id, buffer: piece.buffer }))
      }
    }
    await writes.drain()
    if (locator !== undefined) {
      await vhd.writeParentLocator({ id: 0, platformCode: PLATFORMS.W2KU, data: locator })
    }
    await vhd.writeBlockAllocationTable()
    await vhd.writeHeader()
    await vhd.writeFooter()
    // the bytes vhd-lib just wrote: the objects packed with the checksums it set
    builder!.setStructures({ footer: packFooter(vhd.footer), header: packHeader(vhd.header), bat: directoryBat(vhd.header.maxTableEntries, order), locators: [locator] })
    await disposable.dispose()
    // the alias is written last: until it exists, the directory is an orphan nobody reads
    await VhdAbstract.createAlias(handler, aliasPath, dataPath)
  } catch (error) {
    await writes.settle()
    await handler.rmtree(dataPath).catch(() => {})
    await handler.unlink(aliasPath).catch(() => {})
    throw error
  }
  return builder!.build()
}

/**
 * Writes the exported VHD `input` at `path` (from the remote root): a VHD directory if `path`
 * ends in `.alias.vhd`, a VHD file otherwise. Never overwrites an existing VHD. On any error
 * (including a failing input or `signal`), what was written is removed and the error rethrown.
 */
export async function writeVhd(handler: RemoteHandler, path: string, input: Readable, opts: WriteVhdOptions): Promise<WriteVhdResult> {
  path = normalizePath(path)
  const { signal, onProgress, onSize } = opts
  const directory = path.endsWith('.alias.vhd')
  if (!path.endsWith('.vhd')) throw new BackupError('INVALID_PARAMETER', `a VHD path must end in .vhd: ${path}`)
  const uuid = parseUuid(opts.uuid)
  const onAbort = () => input.destroy(cancelled(signal!))
  // the parser reads the input's error from `input.errored`; an error raised between two reads
  // must not become an uncaught 'error' event
  const swallow = () => {}
  input.on('error', swallow)
  try {
    signal?.throwIfAborted()
    if (await exists(handler, path)) {
      throw new BackupError('TRANSFER_FAILED', `refusing to overwrite the existing VHD ${path}`, { path })
    }
    const parent = opts.parent === undefined ? undefined : await readParent(handler, path, normalizePath(opts.parent))
    signal?.addEventListener('abort', onAbort, { once: true })

    let size = 0
    let sized = false
    async function* counted(): AsyncGenerator<Piece> {
      for await (const piece of canonicalPieces(parseVhdStream(input), uuid, parent)) {
        if (signal?.aborted) throw cancelled(signal)
        if (piece.kind === 'head' && !sized) {
          sized = true
          onSize?.(piece.total)
        }
        size += piece.buffer.length
        yield piece
        onProgress?.(size)
      }
    }

    const parentName = parent?.name ?? ''
    const list = directory ? await writeVhdDirectory(handler, path, counted(), parentName) : await writeVhdFile(handler, path, counted(), parentName)
    try {
      await writeSidecar(handler, path, list)
    } catch (error) {
      await removeVhdWritten(handler, path)
      throw error
    }
    return { size, checksum: list.digest, blockChecksums: list }
  } catch (error) {
    input.destroy()
    if (signal?.aborted) throw cancelled(signal)
    if (error instanceof BackupError) throw error
    throw new BackupError('TRANSFER_FAILED', `writing VHD ${path} failed: ${(error as Error).message}`, { path }, { cause: error })
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/** what writeVhd wrote at `path`, when its sidecar could not be written */
async function removeVhdWritten(handler: RemoteHandler, path: string): Promise<void> {
  await removeSidecar(handler, path).catch(() => {})
  if (path.endsWith('.alias.vhd')) {
    await handler.rmtree(vhdDataPath(path)).catch(() => {})
  }
  await handler.unlink(path).catch(() => {})
}

