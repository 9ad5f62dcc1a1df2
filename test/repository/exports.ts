/**
 * Test exports: VHD streams shaped like XAPI's `export_raw_vdi?format=vhd` (a dynamic VHD for a
 * full, a differencing VHD of whole 2 MiB blocks for a delta), built in memory from seeded
 * blocks, plus the disk they describe so tests can hash what a restore must give back.
 */
import { createHash, randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'

const require = createRequire(import.meta.url)
interface Geometry { cylinders: number; heads: number; sectorsPerTrackCylinder: number; actualSize: number }
const { createFooter, createHeader } = require('vhd-lib/_createFooterHeader.js') as {
  createFooter(size: number, timestamp: number, geometry: Geometry, dataOffset: number, diskType: number): Buffer
  createHeader(maxTableEntries: number, tableOffset?: number, blockSize?: number): Buffer
}
const computeGeometryForSize = require('vhd-lib/_computeGeometryForSize.js') as (size: number) => Geometry

export const BLOCK = 2 * 1024 * 1024
const SECTOR = 512
const BITMAP = SECTOR // 4096 sectors per block → 512 bytes of bitmap

/** deterministic pseudo-random bytes (xorshift32) */
export function seededBlock(seed: number, size = BLOCK): Buffer {
  const words = new Uint32Array(size / 4)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    words[i] = x
  }
  return Buffer.from(words.buffer)
}

export interface ExportSpec {
  readonly virtualSize: number
  /** block id → block data (BLOCK bytes) */
  readonly blocks: ReadonlyMap<number, Buffer>
  readonly differencing: boolean
  /** order of the blocks in the stream (default: ascending ids) */
  readonly order?: readonly number[]
}

/** the VHD bytes of an export, as one buffer (tests use small disks) */
export function exportBytes(spec: ExportSpec): Buffer {
  const geometry = computeGeometryForSize(spec.virtualSize)
  // as XAPI and vhd-lib do: the BAT covers the CHS geometry's size, a little over the virtual size
  const maxTableEntries = Math.ceil(geometry.actualSize / BLOCK)
  const batSize = Math.ceil((maxTableEntries * 4) / SECTOR) * SECTOR
  const footer = createFooter(spec.virtualSize, Math.floor(Date.now() / 1000), geometry, SECTOR, spec.differencing ? 4 : 3)
  const header = createHeader(maxTableEntries, SECTOR * 3, BLOCK)
  if (spec.differencing) {
    // a parent uuid of the SR's own chain, which the writer must replace
    Buffer.from(randomUUID().replace(/-/g, ''), 'hex').copy(header, 40)
    // header checksum (bytes 36..39) recomputed
    header.writeUInt32BE(0, 36)
    let sum = 0
    for (const byte of header) sum += byte
    header.writeUInt32BE(~sum >>> 0, 36)
  }
  const bat = Buffer.alloc(batSize, 0xff)
  const order = spec.order ?? [...spec.blocks.keys()].sort((a, b) => a - b)
  let sector = (SECTOR * 3 + batSize) / SECTOR
  const pieces: Buffer[] = [footer, header, bat]
  for (const id of order) {
    bat.writeUInt32BE(sector, id * 4)
    pieces.push(Buffer.alloc(BITMAP, 0xff), spec.blocks.get(id)!)
    sector += (BITMAP + BLOCK) / SECTOR
  }
  pieces.push(footer)
  return Buffer.concat(pieces)
}

/** the export as a stream of 64 KiB chunks; `failAfter` makes it error after that many bytes */
export function exportStream(spec: ExportSpec, failAfter?: number): Readable {
  const bytes = exportBytes(spec)
  async function* chunks() {
    for (let offset = 0; offset < bytes.length; offset += 65536) {
      if (failAfter !== undefined && offset >= failAfter) throw new Error('export connection lost')
      yield bytes.subarray(offset, Math.min(offset + 65536, bytes.length))
    }
  }
  return Readable.from(chunks(), { objectMode: false })
}

/** sha256 of the raw disk a chain of exports (oldest first) describes: newest block wins */
export function expectedDiskHash(virtualSize: number, chain: readonly ExportSpec[]): string {
  const hash = createHash('sha256')
  const zero = Buffer.alloc(BLOCK)
  for (let offset = 0, id = 0; offset < virtualSize; offset += BLOCK, id++) {
    let data: Buffer = zero
    for (const spec of chain) data = spec.blocks.get(id) ?? data
    hash.update(data.subarray(0, Math.min(BLOCK, virtualSize - offset)))
  }
  return hash.digest('hex')
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

export async function hashStream(stream: Readable): Promise<{ sha256: string; length: number }> {
  const hash = createHash('sha256')
  let length = 0
  for await (const chunk of stream) {
    hash.update(chunk as Buffer)
    length += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), length }
}

/** a full over `blockCount` blocks with every other block allocated, then deltas touching a few */
export function seededChain(virtualSize: number, deltas: number, seed = 1): ExportSpec[] {
  const count = Math.ceil(virtualSize / BLOCK)
  const full = new Map<number, Buffer>()
  for (let id = 0; id < count; id += 2) full.set(id, seededBlock(seed * 1000 + id))
  const chain: ExportSpec[] = [{ virtualSize, blocks: full, differencing: false }]
  for (let d = 1; d <= deltas; d++) {
    const blocks = new Map<number, Buffer>()
    blocks.set(d % count, seededBlock(seed * 1000 + d * 100 + 1))
    blocks.set((d * 3 + 1) % count, seededBlock(seed * 1000 + d * 100 + 2))
    chain.push({ virtualSize, blocks, differencing: true })
  }
  return chain
}
