/**
 * VHD chains built in-process for tests and benchmarks, with the expected content of every
 * restore point known without reading anything back.
 *
 * A chain is described block by block: layer 0 is the full (a dynamic VHD), each later layer a
 * differencing VHD whose parent is the previous one. Block data is pseudo-random, derived from
 * (seed, layer, block), so nothing needs to be kept in memory: the expected raw content of a
 * restore point is regenerated and hashed block by block.
 *
 *   const chain = await createVhdChain(handler, { dir: 'vm/vdis/job/vdi', virtualSize: 64 * MiB, layers: [[0, 1, 5], [1, 7]] })
 *   chain.paths    // ['vm/vdis/job/vdi/20260101T000000Z.vhd', 'vm/vdis/job/vdi/20260101T000001Z.vhd']
 *   chain.hashes   // sha256 (hex) of the raw disk at each restore point
 *   await hashRestorePoint(handler, chain.paths[1]) === chain.hashes[1]
 *
 * Layers are written with vhd-lib (`VhdFile` / `VhdDirectory`, `createAlias`), as Xen Orchestra
 * would: a delta's header names its parent's UUID and `parentUnicodeName`, and its parent locator
 * 0 holds the parent's file name. With `directory: true` every restore point is a
 * `<ts>.alias.vhd` pointing at `data/<ts>.vhd/`.
 *
 * A block given as `{ index, sectors: [[start, end], ...] }` holds only those sectors (a partial
 * sector bitmap, in a delta); the data of its other sectors is filled with garbage, which a
 * reader must ignore. Readers that take whole blocks (vhd-lib's `VhdSynthetic`) see that garbage:
 * use `hashRestorePoint`, which reads sector-wise, for such chains.
 */
import { createCipheriv, createHash } from 'node:crypto'
import { posix } from 'node:path'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import {
  computeGeometryForSize,
  DEFAULT_BLOCK_SIZE,
  DISK_TYPES,
  FOOTER_SIZE,
  vhdAliases,
  vhdCreate,
  vhdLib,
  vhdUtils,
  type Vhd,
} from '../../src/repository/vhd-lib.js'

export const MiB = 1024 * 1024
export const BLOCK_SIZE = DEFAULT_BLOCK_SIZE
const SECTOR = 512
const SECTORS_PER_BLOCK = BLOCK_SIZE / SECTOR
const BITMAP_SIZE = 512

/** a block of a layer: its index, and for a partial block the [start, end) sector ranges it holds */
export type BlockSpec = number | { readonly index: number; readonly sectors?: readonly (readonly [number, number])[] }

export interface ChainSpec {
  /** folder of the chain on the handler, e.g. `xo-vm-backups/<vm>/vdis/<job>/<vdi>` */
  readonly dir: string
  /** virtual size in bytes of every layer (a multiple of 2 MiB) */
  readonly virtualSize: number
  /** per-layer virtual size, to model a disk that grew; defaults to `virtualSize` */
  readonly sizes?: readonly number[]
  /** blocks of each layer: [0] the full, then each delta */
  readonly layers: readonly (readonly BlockSpec[])[]
  /** VHD directories behind `.alias.vhd` files instead of VHD files */
  readonly directory?: boolean
  /** seed of the data and UUIDs; chains with different seeds share nothing */
  readonly seed?: number
  /** file names without extension; defaults to consecutive timestamps */
  readonly names?: readonly string[]
}

/** what the fixture knows of each layer, enough to extend the chain and recompute expectations */
export interface LayerModel {
  readonly name: string
  readonly path: string
  readonly uuid: string
  readonly size: number
  readonly blocks: ReadonlyMap<number, readonly (readonly [number, number])[] | undefined>
}

export interface VhdChain {
  readonly dir: string
  readonly directory: boolean
  readonly seed: number
  /** the VHD of each restore point (alias paths for directories), oldest first */
  readonly paths: string[]
  /** footer UUID of each VHD */
  readonly uuids: string[]
  /** sha256 (hex) of the raw disk content of each restore point */
  readonly hashes: string[]
  readonly layers: LayerModel[]
}

function defaultName(i: number): string {
  return `20260101T${String(Math.floor(i / 3600)).padStart(2, '0')}${String(Math.floor(i / 60) % 60).padStart(2, '0')}${String(i % 60).padStart(2, '0')}Z`
}

function uuidOf(seed: number, layer: number): Buffer {
  const raw = createHash('sha256').update(`uuid:${seed}:${layer}`).digest().subarray(0, 16)
  raw[6] = (raw[6]! & 0x0f) | 0x40
  raw[8] = (raw[8]! & 0x3f) | 0x80
  return Buffer.from(raw)
}

function formatUuid(raw: Buffer): string {
  const hex = raw.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Pseudo-random bytes, a pure function of (seed, layer, block, purpose). */
export function pseudoRandom(length: number, seed: number, layer: number, block: number, purpose = 'data'): Buffer {
  const key = createHash('sha256').update(`${purpose}:${seed}:${layer}:${block}`).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  return cipher.update(Buffer.alloc(length))
}

function normalizeBlock(spec: BlockSpec): [number, readonly (readonly [number, number])[] | undefined] {
  if (typeof spec === 'number') {
    return [spec, undefined]
  }
  for (const [start, end] of spec.sectors ?? []) {
    if (!(start >= 0 && start < end && end <= SECTORS_PER_BLOCK)) {
      throw new RangeError(`bad sector range [${start}, ${end}) in block ${spec.index}`)
    }
  }
  return [spec.index, spec.sectors]
}

/** The bitmap and data of a layer's block as written in its VHD (garbage in sectors it does not hold). */
export function layerBlock(seed: number, layer: number, block: number, sectors: readonly (readonly [number, number])[] | undefined): Buffer {
  const buffer = Buffer.alloc(BITMAP_SIZE + BLOCK_SIZE)
  const data = pseudoRandom(BLOCK_SIZE, seed, layer, block)
  if (sectors === undefined) {
    buffer.fill(0xff, 0, SECTORS_PER_BLOCK / 8)
    data.copy(buffer, BITMAP_SIZE)
    return buffer
  }
  pseudoRandom(BLOCK_SIZE, seed, layer, block, 'garbage').copy(buffer, BITMAP_SIZE)
  for (const [start, end] of sectors) {
    for (let s = start; s < end; s++) {
      buffer[s >> 3] = buffer[s >> 3]! | (0x80 >> (s & 7))
    }
    data.copy(buffer, BITMAP_SIZE + start * SECTOR, start * SECTOR, end * SECTOR)
  }
  return buffer
}

/** The raw content of one block of the disk as seen at restore point `upTo`. */
export function expectedBlock(chain: Pick<VhdChain, 'seed' | 'layers'>, upTo: number, block: number): Buffer {
  const out = Buffer.alloc(BLOCK_SIZE)
  for (let layer = 0; layer <= upTo; layer++) {
    const model = chain.layers[layer]!
    if (!model.blocks.has(block)) {
      continue
    }
    const data = pseudoRandom(BLOCK_SIZE, chain.seed, layer, block)
    const sectors = model.blocks.get(block)
    if (sectors === undefined) {
      data.copy(out)
    } else {
      for (const [start, end] of sectors) {
        data.copy(out, start * SECTOR, start * SECTOR, end * SECTOR)
      }
    }
  }
  return out
}

/** sha256 of the raw disk at restore point `upTo`, regenerated block by block. */
export function expectedHash(chain: Pick<VhdChain, 'seed' | 'layers'>, upTo: number): string {
  const size = chain.layers[upTo]!.size
  const hash = createHash('sha256')
  const zero = Buffer.alloc(BLOCK_SIZE)
  const blocks = Math.ceil(size / BLOCK_SIZE)
  for (let block = 0; block < blocks; block++) {
    const inAnyLayer = chain.layers.slice(0, upTo + 1).some(layer => layer.blocks.has(block))
    const data = inAnyLayer ? expectedBlock(chain, upTo, block) : zero
    hash.update(data.subarray(0, Math.min(BLOCK_SIZE, size - block * BLOCK_SIZE)))
  }
  return hash.digest('hex')
}

/** a footer and header (2 MiB blocks, enough entries for `size`) for a new VHD */
export function makeFooterAndHeader(size: number, uuid: Buffer, diskType: number): Pick<Vhd, 'footer' | 'header'> {
  const geometry = computeGeometryForSize(size)
  const footer = vhdUtils.unpackFooter(
    vhdCreate.createFooter(size, Math.floor(Date.UTC(2026, 0, 1) / 1000), geometry, FOOTER_SIZE, diskType),
  )
  footer.uuid = uuid
  // enough entries for the CHS size too, which readers such as qemu take as the disk's size
  const header = vhdUtils.unpackHeader(vhdCreate.createHeader(Math.ceil(Math.max(size, geometry.actualSize) / BLOCK_SIZE)))
  return { footer, header }
}

async function writeLayer(
  handler: RemoteHandler,
  chain: VhdChain,
  layerIndex: number,
  name: string,
  size: number,
  blocks: Map<number, readonly (readonly [number, number])[] | undefined>,
): Promise<LayerModel> {
  const parent = chain.layers[layerIndex - 1]
  const uuid = uuidOf(chain.seed, layerIndex)
  const path = `${chain.dir}/${name}${chain.directory ? '.alias.vhd' : '.vhd'}`
  const dataPath = chain.directory ? `${chain.dir}/data/${name}.vhd` : path
  await handler.mktree(chain.dir)
  const { value: vhd, dispose } = chain.directory
    ? await vhdLib.VhdDirectory.create(handler, dataPath, { flags: 'wx' })
    : await vhdLib.VhdFile.create(handler, dataPath, { flags: 'wx+' })
  try {
    const { footer, header } = makeFooterAndHeader(size, uuid, parent === undefined ? DISK_TYPES.DYNAMIC : DISK_TYPES.DIFFERENCING)
    vhd.footer = footer
    vhd.header = header
    if (parent !== undefined) {
      const parentName = posix.basename(parent.path)
      vhd.header.parentUuid = Buffer.from(parent.uuid.replace(/-/g, ''), 'hex')
      vhd.header.parentUnicodeName = parentName
    }
    if (!chain.directory) {
      await vhd.writeHeader()
      await vhd.writeBlockAllocationTable()
      // reload the BAT without its sector padding, which vhd-lib would take for block entries
      await vhd.readBlockAllocationTable()
    }
    if (parent !== undefined) {
      await vhd.setUniqueParentLocator(posix.basename(parent.path))
    }
    for (const block of [...blocks.keys()].sort((a, b) => a - b)) {
      await vhd.writeEntireBlock({ id: block, buffer: layerBlock(chain.seed, layerIndex, block, blocks.get(block)) })
    }
    await vhd.writeBlockAllocationTable()
    await vhd.writeHeader()
    await vhd.writeFooter()
  } finally {
    await dispose()
  }
  if (chain.directory) {
    await vhdLib.VhdAbstract.createAlias(handler, path, dataPath)
  }
  return { name, path, uuid: formatUuid(uuid), size, blocks }
}

/** Write a chain on `handler` and compute the expected hash of each of its restore points. */
export async function createVhdChain(handler: RemoteHandler, spec: ChainSpec): Promise<VhdChain> {
  const chain: VhdChain = {
    dir: spec.dir.replace(/^\/+|\/+$/g, ''),
    directory: spec.directory ?? false,
    seed: spec.seed ?? 1,
    paths: [],
    uuids: [],
    hashes: [],
    layers: [],
  }
  for (const [i, layerBlocks] of spec.layers.entries()) {
    await appendLayer(handler, chain, layerBlocks, { name: spec.names?.[i], size: spec.sizes?.[i] ?? spec.virtualSize })
  }
  return chain
}

/**
 * Add a delta on top of the chain's newest VHD and return the chain, updated in place. A merge
 * keeps the newest VHD's name and UUID, so this also extends a chain whose oldest layers were
 * merged since: the expected hashes stay those of the original layers.
 */
export async function appendLayer(
  handler: RemoteHandler,
  chain: VhdChain,
  blocks: readonly BlockSpec[],
  opts: { name?: string | undefined; size?: number | undefined } = {},
): Promise<VhdChain> {
  const index = chain.layers.length
  const size = opts.size ?? chain.layers[index - 1]?.size
  if (size === undefined || size % BLOCK_SIZE !== 0) {
    throw new RangeError('a chain needs a virtual size that is a multiple of 2 MiB')
  }
  const map = new Map<number, readonly (readonly [number, number])[] | undefined>()
  for (const spec of blocks) {
    const [block, sectors] = normalizeBlock(spec)
    if (block * BLOCK_SIZE >= size) {
      throw new RangeError(`block ${block} is beyond the disk (${size} bytes)`)
    }
    if (index === 0 && sectors !== undefined) {
      throw new RangeError('the full holds whole blocks')
    }
    map.set(block, sectors)
  }
  const layer = await writeLayer(handler, chain, index, opts.name ?? defaultName(index), size, map)
  chain.layers.push(layer)
  chain.paths.push(layer.path)
  chain.uuids.push(layer.uuid)
  chain.hashes.push(expectedHash(chain, index))
  return chain
}

interface OpenedLayer {
  vhd: Vhd
  dispose(): Promise<void> | void
}

/** Open a restore point's chain, oldest first, following each delta's `parentUnicodeName`. */
async function openChain(handler: RemoteHandler, path: string, strict: boolean): Promise<OpenedLayer[]> {
  const opened: OpenedLayer[] = []
  try {
    let current = path
    for (;;) {
      const { value: vhd, dispose } = await vhdLib.openVhd(handler, current, { flags: 'r', checkSecondFooter: strict })
      opened.unshift({ vhd, dispose })
      await vhd.readBlockAllocationTable()
      if (vhd.footer.diskType === DISK_TYPES.DYNAMIC) {
        return opened
      }
      current = posix.join(posix.dirname(current), vhd.header.parentUnicodeName)
    }
  } catch (error) {
    await Promise.all(opened.map(layer => layer.dispose()))
    throw error
  }
}

/**
 * sha256 of the raw disk a restore point designates, read sector-wise from its chain (each
 * delta's bitmap decides which of its sectors count; the full's blocks count whole). Also checks
 * that each delta names its parent's footer UUID and that each VHD file's two footers agree,
 * unless `strict` is false (then only the bytes are read).
 */
export async function hashRestorePoint(handler: RemoteHandler, path: string, opts: { strict?: boolean } = {}): Promise<string> {
  const strict = opts.strict !== false
  const layers = await openChain(handler, path, strict)
  try {
    for (let i = 1; i < layers.length && strict; i++) {
      if (!layers[i]!.vhd.header.parentUuid.equals(layers[i - 1]!.vhd.footer.uuid)) {
        throw new Error(`${path}: layer ${i} does not name its parent's UUID`)
      }
    }
    const newest = layers[layers.length - 1]!.vhd
    const size = newest.footer.currentSize
    const hash = createHash('sha256')
    const zero = Buffer.alloc(BLOCK_SIZE)
    for (let block = 0; block * BLOCK_SIZE < size; block++) {
      let out: Buffer | undefined
      for (const [i, { vhd }] of layers.entries()) {
        if (!vhd.containsBlock(block)) {
          continue
        }
        const { bitmap, data } = await vhd.readBlock(block)
        out ??= Buffer.alloc(BLOCK_SIZE)
        if (i === 0) {
          data.copy(out)
          continue
        }
        for (let s = 0; s < SECTORS_PER_BLOCK; s++) {
          if ((bitmap[s >> 3]! & (0x80 >> (s & 7))) !== 0) {
            data.copy(out, s * SECTOR, s * SECTOR, (s + 1) * SECTOR)
          }
        }
      }
      hash.update((out ?? zero).subarray(0, Math.min(BLOCK_SIZE, size - block * BLOCK_SIZE)))
    }
    return hash.digest('hex')
  } finally {
    await Promise.all(layers.map(layer => layer.dispose()))
  }
}

/** sha256 of the raw disk of a single full VHD (file or alias), read with vhd-lib's `openVhd` + `rawContent`. */
export async function hashFullWithVhdLib(handler: RemoteHandler, path: string): Promise<string> {
  const { value: vhd, dispose } = await vhdLib.openVhd(handler, path, { flags: 'r' })
  try {
    if (vhd.footer.diskType !== DISK_TYPES.DYNAMIC) {
      throw new Error(`${path} is not a full VHD`)
    }
    await vhd.readBlockAllocationTable()
    const hash = createHash('sha256')
    for await (const chunk of vhd.rawContent() as AsyncIterable<Buffer>) {
      hash.update(chunk)
    }
    return hash.digest('hex')
  } finally {
    await dispose()
  }
}

/** The data folder behind a VHD path: the alias target for directories, the path itself for files. */
export function resolveVhdData(handler: RemoteHandler, path: string): Promise<string> {
  return vhdAliases.resolveVhdAlias(handler, path)
}
