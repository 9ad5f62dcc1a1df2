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
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { BackupError } from '../errors.js'
import { canonicalHead, blockOrderOfBat, copyHeader, hashCanonicalVhd, isAscending } from './canonical-vhd.js'
import { normalizePath, relativeName, vhdDataPath } from './layout.js'
import { exists } from './remote-files.js'
import type { RemoteHandler } from './remote-handler.js'
import {
  Constants,
  VhdAbstract,
  VhdDirectory,
  computeFullBlockSize,
  formatUuid,
  openVhd,
  packFooter,
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
}

export interface WriteVhdResult {
  /** bytes of the canonical VHD (the file's size for a VHD file) */
  readonly size: number
  /** sha256, hex (see canonical-vhd.ts) */
  readonly checksum: string
}

interface ParentInfo {
  readonly uuid: Buffer
  readonly timestamp: number
  /** name relative to the child's folder */
  readonly name: string
}

type Piece =
  | { readonly kind: 'head'; readonly buffer: Buffer; readonly footer: VhdFooter; readonly header: VhdHeader; readonly ascending: boolean; readonly locator?: Buffer }
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
        const ascending = isAscending(order)
        for (const buffer of head.pieces) {
          yield { kind: 'head', buffer, footer, header: head.header, ascending, ...(locator === undefined ? {} : { locator }) }
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

async function writeVhdFile(handler: RemoteHandler, path: string, pieces: AsyncIterable<Piece>): Promise<void> {
  async function* bytes() {
    for await (const piece of pieces) yield piece.buffer
  }
  // outputStream writes to a hidden temporary file and renames it, or removes it on error
  await handler.outputStream(path, Readable.from(bytes(), { objectMode: false }), { checksum: false })
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

async function writeVhdDirectory(handler: RemoteHandler, aliasPath: string, pieces: AsyncIterable<Piece>): Promise<{ ascending: boolean }> {
  const dataPath = vhdDataPath(aliasPath)
  if (await exists(handler, dataPath)) {
    throw new BackupError('TRANSFER_FAILED', `refusing to overwrite the existing VHD directory ${dataPath}`, { path: dataPath })
  }
  let ascending = true
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
        ascending = piece.ascending
        locator = piece.locator
        vhd.footer = piece.footer
        // a VHD directory keeps locator data in its own chunk: no offset
        const header = copyHeader(piece.header)
        for (const entry of header.parentLocatorEntry) entry.platformDataOffset = 0
        vhd.header = header
      } else if (piece.kind === 'block') {
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
    await disposable.dispose()
    // the alias is written last: until it exists, the directory is an orphan nobody reads
    await VhdAbstract.createAlias(handler, aliasPath, dataPath)
  } catch (error) {
    await writes.settle()
    await handler.rmtree(dataPath).catch(() => {})
    await handler.unlink(aliasPath).catch(() => {})
    throw error
  }
  return { ascending }
}

/**
 * Writes the exported VHD `input` at `path` (from the remote root): a VHD directory if `path`
 * ends in `.alias.vhd`, a VHD file otherwise. Never overwrites an existing VHD. On any error
 * (including a failing input or `signal`), what was written is removed and the error rethrown.
 */
export async function writeVhd(handler: RemoteHandler, path: string, input: Readable, opts: WriteVhdOptions): Promise<WriteVhdResult> {
  path = normalizePath(path)
  const { signal, onProgress } = opts
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

    const hash = createHash('sha256')
    let size = 0
    async function* counted(): AsyncGenerator<Piece> {
      for await (const piece of canonicalPieces(parseVhdStream(input), uuid, parent)) {
        if (signal?.aborted) throw cancelled(signal)
        hash.update(piece.buffer)
        size += piece.buffer.length
        yield piece
        onProgress?.(size)
      }
    }

    if (directory) {
      const { ascending } = await writeVhdDirectory(handler, path, counted())
      if (!ascending) {
        // the directory's canonical checksum has its blocks in ascending order: read them back
        const canonical = await hashCanonicalVhd(handler, path, signal)
        return { size: canonical.size, checksum: canonical.sha256 }
      }
    } else {
      await writeVhdFile(handler, path, counted())
    }
    return { size, checksum: hash.digest('hex') }
  } catch (error) {
    input.destroy()
    if (signal?.aborted) throw cancelled(signal)
    if (error instanceof BackupError) throw error
    throw new BackupError('TRANSFER_FAILED', `writing VHD ${path} failed: ${(error as Error).message}`, { path }, { cause: error })
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/** footer UUID of the VHD at `path`, as a canonical string */
export async function readVhdUuid(handler: RemoteHandler, path: string): Promise<string> {
  const disposable = await openVhd(handler, path, { flags: 'r' })
  try {
    return formatUuid(disposable.value.footer.uuid)
  } finally {
    await disposable.dispose()
  }
}
