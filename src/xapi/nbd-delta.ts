/**
 * A differencing VHD of the given 2 MiB blocks of a disk, read over NBD: footer, header, BAT, each
 * block with a full sector bitmap, footer again — the layout XAPI's `export_raw_vdi?format=vhd&base=`
 * streams, so that the same writer (`writeVhd`) lays it out on the remote and records its block
 * checksums. Blocks are read `readAhead` at a time (each holds 2 MiB in memory) and sent in order;
 * the last block of a disk whose size is not a multiple of 2 MiB is padded with zeros.
 */
import { Readable } from 'node:stream'
import type { NbdDisk } from '../nbd/index.js'
import { computeGeometryForSize, DEFAULT_BLOCK_SIZE, DISK_TYPES, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, vhdCreate } from '../repository/vhd-lib.js'

const BITMAP_SIZE = Math.ceil(DEFAULT_BLOCK_SIZE / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
const FULL_BITMAP = Buffer.alloc(BITMAP_SIZE, 0xff)
/** seconds from the Unix epoch to the VHD epoch (2000-01-01) */
const VHD_EPOCH = 946_684_800

export interface NbdDeltaOptions {
  /** blocks read ahead of the one being sent (default 4) */
  readonly readAhead?: number
  /** told of each block read */
  readonly onBlock?: (id: number) => void
}

export function nbdDeltaVhd(disk: Pick<NbdDisk, 'read'>, virtualSize: number, blocks: readonly number[], options: NbdDeltaOptions = {}): Readable {
  const maxTableEntries = Math.ceil(virtualSize / DEFAULT_BLOCK_SIZE)
  const batSize = Math.ceil((maxTableEntries * 4) / SECTOR_SIZE) * SECTOR_SIZE
  const bat = Buffer.alloc(batSize, 0xff)
  let sector = (FOOTER_SIZE + HEADER_SIZE + batSize) / SECTOR_SIZE
  let previous = -1
  for (const id of blocks) {
    if (!Number.isInteger(id) || id <= previous || id >= maxTableEntries) throw new RangeError(`block ${id} is out of order or past the end of the disk`)
    previous = id
    bat.writeUInt32BE(sector, id * 4)
    sector += (BITMAP_SIZE + DEFAULT_BLOCK_SIZE) / SECTOR_SIZE
  }
  const timestamp = Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH)
  const footer = vhdCreate.createFooter(virtualSize, timestamp, computeGeometryForSize(virtualSize), FOOTER_SIZE, DISK_TYPES.DIFFERENCING)
  const header = vhdCreate.createHeader(maxTableEntries, FOOTER_SIZE + HEADER_SIZE, DEFAULT_BLOCK_SIZE)
  const readAhead = Math.max(1, options.readAhead ?? 4)

  const readBlock = async (id: number): Promise<Buffer> => {
    const offset = id * DEFAULT_BLOCK_SIZE
    const length = Math.min(DEFAULT_BLOCK_SIZE, virtualSize - offset)
    const data = await disk.read(offset, length)
    options.onBlock?.(id)
    if (length === DEFAULT_BLOCK_SIZE) return data
    const padded = Buffer.alloc(DEFAULT_BLOCK_SIZE)
    data.copy(padded)
    return padded
  }

  async function* generate(): AsyncGenerator<Buffer> {
    yield footer
    yield header
    yield bat
    const window: Promise<Buffer>[] = []
    let next = 0
    try {
      while (next < blocks.length || window.length > 0) {
        while (next < blocks.length && window.length < readAhead) {
          const read = readBlock(blocks[next++]!)
          read.catch(() => {})
          window.push(read)
        }
        yield FULL_BITMAP
        yield await window.shift()!
      }
    } finally {
      await Promise.allSettled(window)
    }
    yield footer
  }

  return Readable.from(generate(), { objectMode: false, highWaterMark: DEFAULT_BLOCK_SIZE })
}
