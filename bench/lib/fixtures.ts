/**
 * Seeded VHD chains for the benchmark: a model of each layer (which blocks, which bytes) and
 * writers for both on-remote formats (a `.vhd` file, or a `.alias.vhd` pointing to a VHD
 * directory). Block bytes are derived from a seeded random pool, so a layer can be written again,
 * or its expected content hashed, without keeping it in memory.
 */
import { createHash } from 'node:crypto'
import { mkdir, open, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Prng } from './prng.js'
import {
  BITMAP_SIZE,
  BLOCK_SIZE,
  DISK_TYPE_DIFFERENCING,
  DISK_TYPE_DYNAMIC,
  FOOTER_SIZE,
  HEADER_SIZE,
  SECTOR_SIZE,
  batSize,
  formatUuid,
  maxTableEntriesFor,
  packFooter,
  packHeader,
  packLocator,
} from './vhd-format.js'

export interface Layer {
  /** file stem, an XO timestamp such as 20260101T000000Z */
  readonly stem: string
  readonly uuid: Buffer
  readonly timestampMs: number
  /** allocated block ids, ascending */
  readonly blocks: readonly number[]
  readonly contentSeed: number
}

export interface ChainModel {
  readonly virtualSize: number
  /** oldest (the full) first */
  readonly layers: readonly Layer[]
}

export interface ChainShape {
  readonly virtualSize: number
  readonly fullBlocks: number
  /** one entry per differencing layer: how many blocks it changes, and how many of them the older layers already hold */
  readonly deltas: readonly { readonly blocks: number; readonly overlapping: number }[]
}

const POOL_SIZE = 8 * 1024 * 1024
const BASE_TIMESTAMP_MS = Date.UTC(2026, 0, 1)

function stemOf(timestampMs: number): string {
  return new Date(timestampMs).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

/** a seeded chain: the full holds `fullBlocks` random blocks, each delta changes scattered blocks */
export function planChain(seed: number, shape: ChainShape): ChainModel {
  const prng = new Prng(seed)
  const entries = maxTableEntriesFor(shape.virtualSize)
  const layers: Layer[] = []
  const allocated = new Set<number>()
  const makeLayer = (index: number, blocks: number[]): Layer => {
    const timestampMs = BASE_TIMESTAMP_MS + index * 86_400_000
    const uuid = prng.fill(Buffer.alloc(16))
    uuid[6] = (uuid[6]! & 0x0f) | 0x40 // version 4
    uuid[8] = (uuid[8]! & 0x3f) | 0x80 // variant
    for (const block of blocks) allocated.add(block)
    return { stem: stemOf(timestampMs), uuid, timestampMs, blocks, contentSeed: prng.nextUint32() }
  }
  layers.push(makeLayer(0, prng.distinct(shape.fullBlocks, entries)))
  shape.deltas.forEach((delta, i) => {
    const overlapping = prng.sample([...allocated].sort((a, b) => a - b), delta.overlapping)
    const fresh = prng.distinct(delta.blocks - delta.overlapping, entries, allocated)
    layers.push(makeLayer(i + 1, [...overlapping, ...fresh].sort((a, b) => a - b)))
  })
  return { virtualSize: shape.virtualSize, layers }
}

/** deterministic, incompressible block bytes: a slice of a seeded random pool, stamped per 4 KiB page */
export class BlockContent {
  readonly #pool: Buffer

  constructor(seed: number) {
    this.#pool = new Prng(seed ^ 0x5eed).fill(Buffer.allocUnsafe(POOL_SIZE))
  }

  /** writes the `BLOCK_SIZE` bytes of `blockId` in `layer` into `target` */
  fill(target: Buffer, layer: Layer, blockId: number): Buffer {
    const mix = new Prng((layer.contentSeed ^ Math.imul(blockId + 1, 0x9e3779b1)) >>> 0)
    const start = mix.below((POOL_SIZE - BLOCK_SIZE) / 4) * 4
    this.#pool.copy(target, 0, start, start + BLOCK_SIZE)
    for (let page = 0; page < BLOCK_SIZE; page += 4096) {
      target.writeUInt32LE(layer.contentSeed, page)
      target.writeUInt32LE(blockId, page + 4)
      target.writeUInt32LE(page, page + 8)
    }
    return target
  }
}

/** the layer holding the newest copy of each block of `layers`, by block id, ascending */
export function newestOwners(layers: readonly Layer[]): Map<number, Layer> {
  const owners = new Map<number, Layer>()
  for (const layer of layers) for (const block of layer.blocks) owners.set(block, layer)
  return new Map([...owners].sort((a, b) => a[0] - b[0]))
}

/**
 * Content hash of a disk, independent of its container: sha256 over the virtual size, then each
 * non-zero block as (block id, bytes), ascending. Two disks have the same hash when a guest
 * reads the same bytes from them.
 */
export class DiskHasher {
  readonly #hash = createHash('sha256')
  #lastBlock = -1

  constructor(virtualSize: number) {
    const size = Buffer.alloc(8)
    size.writeBigUInt64BE(BigInt(virtualSize))
    this.#hash.update('disk-content-v1\0').update(size)
  }

  /** blocks must come in ascending order; all-zero blocks are skipped (a hole reads as zeros) */
  block(blockId: number, data: Buffer): void {
    if (blockId <= this.#lastBlock) throw new Error(`block ${blockId} out of order`)
    this.#lastBlock = blockId
    if (isZero(data)) return
    const id = Buffer.alloc(4)
    id.writeUInt32BE(blockId)
    this.#hash.update(id).update(data)
  }

  digest(): string {
    return this.#hash.digest('hex')
  }
}

const ZERO_PAGE = Buffer.alloc(64 * 1024)
function isZero(data: Buffer): boolean {
  for (let i = 0; i < data.length; i += ZERO_PAGE.length) {
    const end = Math.min(i + ZERO_PAGE.length, data.length)
    if (!data.subarray(i, end).equals(ZERO_PAGE.subarray(0, end - i))) return false
  }
  return true
}

/** expected content hash of the disk seen through `layers` (newest block wins) */
export function expectedDiskHash(model: ChainModel, layers: readonly Layer[], content: BlockContent): string {
  const hasher = new DiskHasher(model.virtualSize)
  const buffer = Buffer.allocUnsafe(BLOCK_SIZE)
  for (const [blockId, layer] of newestOwners(layers)) hasher.block(blockId, content.fill(buffer, layer, blockId))
  return hasher.digest()
}

function headerFor(model: ChainModel, index: number, tableOffset: number, locatorOffset: number, ext: string): Buffer {
  const parent = index > 0 ? model.layers[index - 1]! : undefined
  const entries = maxTableEntriesFor(model.virtualSize)
  return packHeader({
    maxTableEntries: entries,
    tableOffset,
    parent:
      parent === undefined
        ? undefined
        : {
            uuid: parent.uuid,
            timestampMs: parent.timestampMs,
            name: `${parent.stem}${ext}`,
            locatorOffset,
            locatorLength: packLocator(`./${parent.stem}${ext}`).length,
          },
  })
}

function footerFor(model: ChainModel, index: number): Buffer {
  const layer = model.layers[index]!
  return packFooter({
    virtualSize: model.virtualSize,
    diskType: index === 0 ? DISK_TYPE_DYNAMIC : DISK_TYPE_DIFFERENCING,
    uuid: layer.uuid,
    timestampMs: layer.timestampMs,
  })
}

function fullBlockBuffer(): Buffer {
  const buffer = Buffer.allocUnsafe(BITMAP_SIZE + BLOCK_SIZE)
  buffer.fill(0xff, 0, BITMAP_SIZE) // every sector of the block is present
  return buffer
}

/**
 * writes layer `index` of `model` as `<dir>/<stem>.vhd`, flushed to disk (unless `sync` is false:
 * many tiny files read from the page cache); returns its path
 */
export async function writeVhdFile(dir: string, model: ChainModel, index: number, content: BlockContent, opts: { sync?: boolean } = {}): Promise<string> {
  const layer = model.layers[index]!
  const entries = maxTableEntriesFor(model.virtualSize)
  const tableOffset = FOOTER_SIZE + HEADER_SIZE
  const locatorOffset = tableOffset + batSize(entries)
  const firstBlock = locatorOffset + SECTOR_SIZE
  const footer = footerFor(model, index)
  const bat = Buffer.alloc(batSize(entries), 0xff)
  layer.blocks.forEach((blockId, i) => bat.writeUInt32BE((firstBlock + i * (BITMAP_SIZE + BLOCK_SIZE)) / SECTOR_SIZE, blockId * 4))
  const locator = Buffer.alloc(SECTOR_SIZE)
  if (index > 0) packLocator(`./${model.layers[index - 1]!.stem}.vhd`).copy(locator)

  await mkdir(dir, { recursive: true })
  const path = join(dir, `${layer.stem}.vhd`)
  const file = await open(path, 'wx')
  try {
    await file.write(footer, 0, FOOTER_SIZE, 0)
    await file.write(headerFor(model, index, tableOffset, locatorOffset, '.vhd'), 0, HEADER_SIZE, FOOTER_SIZE)
    await file.write(bat, 0, bat.length, tableOffset)
    await file.write(locator, 0, SECTOR_SIZE, locatorOffset)
    const block = fullBlockBuffer()
    let position = firstBlock
    for (const blockId of layer.blocks) {
      content.fill(block.subarray(BITMAP_SIZE), layer, blockId)
      await file.write(block, 0, block.length, position)
      position += block.length
    }
    await file.write(footer, 0, FOOTER_SIZE, position)
    if (opts.sync !== false) await file.sync()
  } finally {
    await file.close()
  }
  return path
}

/**
 * writes layer `index` as a VHD directory `<dir>/data/<uuid>.vhd/` and its alias
 * `<dir>/<stem>.alias.vhd`, flushed to disk; returns the alias path
 */
export async function writeVhdDirectory(dir: string, model: ChainModel, index: number, content: BlockContent): Promise<string> {
  const layer = model.layers[index]!
  const entries = maxTableEntriesFor(model.virtualSize)
  const relative = `data/${formatUuid(layer.uuid)}.vhd`
  const vhdDir = join(dir, relative)
  await mkdir(vhdDir, { recursive: true })
  const bat = Buffer.alloc(Math.ceil(entries / 8))
  for (const blockId of layer.blocks) bat[blockId >> 3]! |= 0x80 >> (blockId & 7)
  const written: string[] = []
  const put = async (name: string, data: Buffer | string): Promise<void> => {
    const path = join(vhdDir, name)
    await writeFile(path, data, { flag: 'wx' })
    written.push(path)
  }
  await put('footer', footerFor(model, index))
  await put('header', headerFor(model, index, FOOTER_SIZE + HEADER_SIZE, 0, '.alias.vhd'))
  await put('bat', bat)
  if (index > 0) await put('parentLocatorEntry0', packLocator(`./${model.layers[index - 1]!.stem}.alias.vhd`))
  const block = fullBlockBuffer()
  for (const blockId of layer.blocks) {
    const prefix = Math.floor(blockId / 1000)
    await mkdir(join(vhdDir, 'blocks', String(prefix)), { recursive: true })
    content.fill(block.subarray(BITMAP_SIZE), layer, blockId)
    await put(`blocks/${prefix}/${blockId - prefix * 1000}`, block)
  }
  const alias = join(dir, `${layer.stem}.alias.vhd`)
  await writeFile(alias, relative, { flag: 'wx' })
  return alias
}
