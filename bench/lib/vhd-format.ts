/**
 * Just enough of the VHD format (Microsoft VHD specification, dynamic and differencing disks) to
 * write benchmark inputs and to read block positions back. Independent of the code measured.
 */
export const SECTOR_SIZE = 512
export const FOOTER_SIZE = 512
export const HEADER_SIZE = 1024
export const BLOCK_SIZE = 2 * 1024 * 1024
export const BITMAP_SIZE = SECTOR_SIZE // one bit per sector of a 2 MiB block, rounded to a sector
export const BLOCK_UNUSED = 0xffffffff
export const DISK_TYPE_DYNAMIC = 3
export const DISK_TYPE_DIFFERENCING = 4
const PLATFORM_W2KU = 0x57326b75
/** VHD timestamps count seconds from 2000-01-01T00:00:00Z */
const VHD_EPOCH_MS = Date.UTC(2000, 0, 1)

export interface DiskGeometry {
  readonly cylinders: number
  readonly heads: number
  readonly sectorsPerTrack: number
}

/** CHS geometry as computed in the VHD specification (appendix "CHS calculation") */
export function computeGeometry(size: number): DiskGeometry {
  let totalSectors = Math.floor(size / SECTOR_SIZE)
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255
  let sectorsPerTrack: number
  let heads: number
  let cylinderTimesHeads: number
  if (totalSectors >= 65535 * 16 * 63) {
    sectorsPerTrack = 255
    heads = 16
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
  } else {
    sectorsPerTrack = 17
    cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024))
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31
      heads = 16
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63
      heads = 16
      cylinderTimesHeads = Math.floor(totalSectors / sectorsPerTrack)
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack }
}

/** one's complement of the byte sum, the checksum field itself counted as zero */
function checksum(buffer: Buffer, checksumOffset: number): number {
  let sum = 0
  for (let i = 0; i < buffer.length; i++) {
    if (i < checksumOffset || i >= checksumOffset + 4) sum = (sum + buffer[i]!) >>> 0
  }
  return ~sum >>> 0
}

export interface FooterFields {
  readonly virtualSize: number
  readonly diskType: typeof DISK_TYPE_DYNAMIC | typeof DISK_TYPE_DIFFERENCING
  readonly uuid: Buffer
  /** milliseconds since the Unix epoch */
  readonly timestampMs: number
}

export function packFooter(fields: FooterFields): Buffer {
  const footer = Buffer.alloc(FOOTER_SIZE)
  footer.write('conectix', 0, 'latin1')
  footer.writeUInt32BE(2, 8) // features: reserved bit set
  footer.writeUInt32BE(0x00010000, 12) // file format version
  footer.writeBigUInt64BE(BigInt(FOOTER_SIZE), 16) // data offset: the header follows the first footer
  footer.writeUInt32BE(Math.floor((fields.timestampMs - VHD_EPOCH_MS) / 1000) >>> 0, 24)
  footer.write('xo  ', 28, 'latin1')
  footer.writeUInt32BE(0x00010000, 32) // creator version
  footer.writeUInt32BE(0x5769326b, 36) // creator host OS: Wi2k
  footer.writeBigUInt64BE(BigInt(fields.virtualSize), 40) // original size
  footer.writeBigUInt64BE(BigInt(fields.virtualSize), 48) // current size
  const geometry = computeGeometry(fields.virtualSize)
  footer.writeUInt16BE(geometry.cylinders, 56)
  footer.writeUInt8(geometry.heads, 58)
  footer.writeUInt8(geometry.sectorsPerTrack, 59)
  footer.writeUInt32BE(fields.diskType, 60)
  fields.uuid.copy(footer, 68, 0, 16)
  footer.writeUInt32BE(checksum(footer, 64), 64)
  return footer
}

export interface HeaderFields {
  readonly maxTableEntries: number
  readonly tableOffset: number
  readonly parent?: {
    readonly uuid: Buffer
    readonly timestampMs: number
    /** file name of the parent, stored as the parent's unicode name */
    readonly name: string
    /** where the W2KU locator data (the relative path) is: a byte offset in a file, 0 in a directory */
    readonly locatorOffset: number
    readonly locatorLength: number
  }
}

export function packHeader(fields: HeaderFields): Buffer {
  const header = Buffer.alloc(HEADER_SIZE)
  header.write('cxsparse', 0, 'latin1')
  header.writeBigUInt64BE(0xffffffffffffffffn, 8) // data offset: unused
  header.writeBigUInt64BE(BigInt(fields.tableOffset), 16)
  header.writeUInt32BE(0x00010000, 24) // header version
  header.writeUInt32BE(fields.maxTableEntries, 28)
  header.writeUInt32BE(BLOCK_SIZE, 32)
  const { parent } = fields
  if (parent !== undefined) {
    parent.uuid.copy(header, 40, 0, 16)
    header.writeUInt32BE(Math.floor((parent.timestampMs - VHD_EPOCH_MS) / 1000) >>> 0, 56)
    const name = Buffer.from(parent.name, 'utf16le').swap16() // UTF-16 big endian
    name.copy(header, 64, 0, Math.min(name.length, 512))
    // parent locator entry 0: W2KU, one sector of space
    header.writeUInt32BE(PLATFORM_W2KU, 576)
    header.writeUInt32BE(1, 580) // data space, in sectors
    header.writeUInt32BE(parent.locatorLength, 584)
    header.writeBigUInt64BE(BigInt(parent.locatorOffset), 592)
  }
  header.writeUInt32BE(checksum(header, 36), 36)
  return header
}

/** W2KU parent locator data: the relative path of the parent, UTF-16 little endian */
export function packLocator(relativePath: string): Buffer {
  return Buffer.from(relativePath, 'utf16le')
}

export function batSize(maxTableEntries: number): number {
  return Math.ceil((maxTableEntries * 4) / SECTOR_SIZE) * SECTOR_SIZE
}

export function maxTableEntriesFor(virtualSize: number): number {
  return Math.ceil(virtualSize / BLOCK_SIZE)
}

export interface ParsedVhd {
  readonly virtualSize: number
  readonly diskType: number
  readonly uuid: string
  readonly tableOffset: number
  readonly maxTableEntries: number
  readonly blockSize: number
}

/** reads the fields this benchmark needs from a footer and a header, checking their checksums */
export function parseFooterAndHeader(footer: Buffer, header: Buffer): ParsedVhd {
  if (footer.toString('latin1', 0, 8) !== 'conectix') throw new Error('not a VHD footer')
  if (header.toString('latin1', 0, 8) !== 'cxsparse') throw new Error('not a dynamic VHD header')
  if (footer.readUInt32BE(64) !== checksum(footer.subarray(0, FOOTER_SIZE), 64)) throw new Error('bad footer checksum')
  if (header.readUInt32BE(36) !== checksum(header.subarray(0, HEADER_SIZE), 36)) throw new Error('bad header checksum')
  return {
    virtualSize: Number(footer.readBigUInt64BE(48)),
    diskType: footer.readUInt32BE(60),
    uuid: formatUuid(footer.subarray(68, 84)),
    tableOffset: Number(header.readBigUInt64BE(16)),
    maxTableEntries: header.readUInt32BE(28),
    blockSize: header.readUInt32BE(32),
  }
}

export function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}
