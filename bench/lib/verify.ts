/**
 * Content hashes (see `DiskHasher`) of benchmark outputs, computed by readers that share no code
 * with the code measured: a VHD file or directory read with vhd-lib, and a VHD stream parsed here.
 */
import type { Readable } from 'node:stream'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { DiskHasher } from './fixtures.js'
import { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, batSize, formatUuid, parseFooterAndHeader } from './vhd-format.js'
import { openVhd } from './vhd-lib.js'

export interface HashedDisk {
  readonly hash: string
  /** footer UUID */
  readonly uuid: string
  readonly diskType: number
}

/** sectors whose bitmap bit is clear read as zeros in a full (non-differencing) disk */
function applyBitmap(bitmap: Buffer, data: Buffer): Buffer {
  const sectors = data.length / SECTOR_SIZE
  let full = true
  for (let i = 0; i < sectors / 8; i++) if (bitmap[i] !== 0xff) full = false
  if (full) return data
  const copy = Buffer.from(data)
  for (let sector = 0; sector < sectors; sector++) {
    if ((bitmap[sector >> 3]! & (0x80 >> (sector & 7))) === 0) copy.fill(0, sector * SECTOR_SIZE, (sector + 1) * SECTOR_SIZE)
  }
  return copy
}

/** content hash of a VHD (file or alias of a directory) on a remote, read with vhd-lib */
export async function hashVhd(handler: RemoteHandler, path: string): Promise<HashedDisk> {
  const { value: vhd, dispose } = await openVhd(handler, path, { flags: 'r' })
  try {
    await vhd.readBlockAllocationTable()
    const hasher = new DiskHasher(vhd.footer.currentSize)
    for (let blockId = 0; blockId < vhd.header.maxTableEntries; blockId++) {
      if (!vhd.containsBlock(blockId)) continue
      const { bitmap, data } = await vhd.readBlock(blockId)
      hasher.block(blockId, applyBitmap(bitmap, data))
    }
    return { hash: hasher.digest(), uuid: formatUuid(vhd.footer.uuid), diskType: vhd.footer.diskType }
  } finally {
    await dispose()
  }
}

/** pulls exact byte counts out of a stream */
class ByteReader {
  readonly #iterator: AsyncIterator<Buffer>
  #pending: Buffer = Buffer.alloc(0)
  position = 0

  constructor(stream: Readable) {
    this.#iterator = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  }

  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = []
    let missing = n
    while (missing > 0) {
      if (this.#pending.length === 0) {
        const next = await this.#iterator.next()
        if (next.done === true) throw new Error(`stream ended ${missing} bytes early at ${this.position}`)
        this.#pending = next.value
      }
      const part = this.#pending.subarray(0, missing)
      this.#pending = this.#pending.subarray(part.length)
      parts.push(part)
      missing -= part.length
    }
    this.position += n
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  async skipTo(position: number): Promise<void> {
    if (position < this.position) throw new Error(`cannot go back from ${this.position} to ${position}`)
    while (this.position < position) await this.read(Math.min(position - this.position, 1 << 20))
  }

  async drain(): Promise<void> {
    this.position += this.#pending.length
    this.#pending = Buffer.alloc(0)
    for (;;) {
      const next = await this.#iterator.next()
      if (next.done === true) return
      this.position += next.value.length
    }
  }
}

/** content hash of a dynamic VHD given as a stream (blocks in any order of increasing offset) */
export async function hashVhdStream(stream: Readable): Promise<HashedDisk & { bytes: number }> {
  const reader = new ByteReader(stream)
  const footer = await reader.read(FOOTER_SIZE)
  const header = await reader.read(HEADER_SIZE)
  const vhd = parseFooterAndHeader(footer, header)
  await reader.skipTo(vhd.tableOffset)
  const bat = await reader.read(batSize(vhd.maxTableEntries))
  const blocks: { id: number; offset: number }[] = []
  for (let id = 0; id < vhd.maxTableEntries; id++) {
    const sector = bat.readUInt32BE(id * 4)
    if (sector !== BLOCK_UNUSED) blocks.push({ id, offset: sector * SECTOR_SIZE })
  }
  blocks.sort((a, b) => a.offset - b.offset)
  const bitmapSize = Math.ceil(vhd.blockSize / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
  const contents = new Map<number, Buffer>()
  const hasher = new DiskHasher(vhd.virtualSize)
  // blocks come in offset order; the hash wants id order: hash the ascending runs as they complete
  let nextId = 0
  const ids = blocks.map(b => b.id).sort((a, b) => a - b)
  for (const { id, offset } of blocks) {
    await reader.skipTo(offset)
    const bitmap = await reader.read(bitmapSize)
    contents.set(id, applyBitmap(bitmap, await reader.read(vhd.blockSize)))
    while (nextId < ids.length && contents.has(ids[nextId]!)) {
      hasher.block(ids[nextId]!, contents.get(ids[nextId]!)!)
      contents.delete(ids[nextId]!)
      nextId++
    }
  }
  await reader.drain()
  return { hash: hasher.digest(), uuid: vhd.uuid, diskType: vhd.diskType, bytes: reader.position }
}
