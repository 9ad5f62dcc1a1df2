/**
 * Streams a VHD as XAPI's `export_raw_vdi?format=vhd` does: footer, dynamic header, BAT, then each
 * allocated 2 MiB block preceded by its sector bitmap, and the footer again at the end.
 * A dynamic disk (type 3) for a full export; a differencing disk (type 4) naming its parent for a
 * delta. The structures are packed with vhd-lib's own definitions.
 */
import { Readable } from 'node:stream'

import { checksumStruct, computeGeometryForSize, fuFooter, fuHeader, vhdConstants } from './vhd-lib-parts.js'

const { DEFAULT_BLOCK_SIZE, DISK_TYPES, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE } = vhdConstants

export const VHD_BLOCK_SIZE = DEFAULT_BLOCK_SIZE
const BITMAP_SIZE = Math.ceil(DEFAULT_BLOCK_SIZE / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
const FULL_BITMAP = Buffer.alloc(BITMAP_SIZE, 0xff)
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01T00:00:00Z). */
const VHD_EPOCH_OFFSET = 946_684_800

export interface VhdSource {
  virtualSize: number
  /** Footer UUID: the exported VDI's uuid. */
  uuid: string
  /** Indexes of the blocks to include, ascending. */
  blocks: readonly number[]
  /** Reads block `index` (VHD_BLOCK_SIZE bytes, zero-padded past the end of the disk). */
  readBlock(index: number): Promise<Buffer>
  /** Present for a differencing VHD. */
  parent?: { uuid: string; time: Date }
}

const uuidBytes = (uuid: string): Buffer => Buffer.from(uuid.replace(/-/g, ''), 'hex')
const vhdTime = (date: Date): number => Math.max(0, Math.floor(date.getTime() / 1000) - VHD_EPOCH_OFFSET)

function packFooter(source: VhdSource): Buffer {
  const footer = fuFooter.pack({
    cookie: vhdConstants.FOOTER_COOKIE,
    features: 2,
    fileFormatVersion: vhdConstants.FILE_FORMAT_VERSION,
    dataOffset: FOOTER_SIZE,
    timestamp: vhdTime(new Date()),
    creatorApplication: 'tap',
    creatorVersion: 0x00010003,
    creatorHostOs: 0,
    originalSize: source.virtualSize,
    currentSize: source.virtualSize,
    diskGeometry: computeGeometryForSize(source.virtualSize),
    diskType: source.parent === undefined ? DISK_TYPES.DYNAMIC : DISK_TYPES.DIFFERENCING,
    uuid: uuidBytes(source.uuid),
  })
  checksumStruct(footer, fuFooter)
  return footer
}

function packHeader(source: VhdSource, maxTableEntries: number): Buffer {
  const header = fuHeader.pack({
    cookie: vhdConstants.HEADER_COOKIE,
    dataOffset: undefined,
    tableOffset: FOOTER_SIZE + HEADER_SIZE,
    headerVersion: vhdConstants.HEADER_VERSION,
    maxTableEntries,
    blockSize: VHD_BLOCK_SIZE,
    parentUuid: source.parent === undefined ? Buffer.alloc(16) : uuidBytes(source.parent.uuid),
    parentTimestamp: source.parent === undefined ? 0 : vhdTime(source.parent.time),
  })
  checksumStruct(header, fuHeader)
  return header
}

/** The VHD as a byte stream; `length` is its exact size. */
export function vhdStream(source: VhdSource): Readable & { length: number } {
  const maxTableEntries = Math.ceil(source.virtualSize / VHD_BLOCK_SIZE)
  const batSize = Math.ceil((maxTableEntries * 4) / SECTOR_SIZE) * SECTOR_SIZE
  const bat = Buffer.alloc(batSize, 0xff)
  let sector = (FOOTER_SIZE + HEADER_SIZE + batSize) / SECTOR_SIZE
  for (const index of source.blocks) {
    if (index >= maxTableEntries) throw new RangeError(`block ${index} is past the end of the disk`)
    bat.writeUInt32BE(sector, index * 4)
    sector += (BITMAP_SIZE + VHD_BLOCK_SIZE) / SECTOR_SIZE
  }
  const length = sector * SECTOR_SIZE + FOOTER_SIZE
  const footer = packFooter(source)
  const header = packHeader(source, maxTableEntries)

  async function* generate(): AsyncGenerator<Buffer> {
    yield footer
    yield header
    yield bat
    for (const index of source.blocks) {
      yield FULL_BITMAP
      yield await source.readBlock(index)
    }
    yield footer
  }

  return Object.assign(Readable.from(generate(), { objectMode: false, highWaterMark: VHD_BLOCK_SIZE }), { length })
}

