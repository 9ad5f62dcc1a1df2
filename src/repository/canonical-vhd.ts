/**
 * The canonical serialization of a VHD: footer, header, BAT, parent locators (in entry order,
 * each padded to whole sectors), blocks in a given order, footer. Our VHD files are written in
 * exactly this layout, so a file's sha256 is the sha256 of its bytes; a VHD directory has no
 * single byte stream, so its checksum is the sha256 of this serialization with blocks in
 * ascending order (which is also what we write when the export's blocks come in that order).
 */
import { createHash } from 'node:crypto'
import type { RemoteHandler } from './remote-handler.js'
import {
  Constants,
  computeBatSize,
  openVhd,
  packFooter,
  packHeader,
  type VhdFooter,
  type VhdHeader,
} from './vhd-lib.js'

const { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, PARENT_LOCATOR_ENTRIES } = Constants

export interface CanonicalHead {
  /** header with `tableOffset` and locator offsets set for the canonical layout */
  readonly header: VhdHeader
  /** footer, header, BAT and locator data, in order */
  readonly pieces: readonly Buffer[]
  /** BAT entry (first sector) of each block id written */
  readonly sectorOf: ReadonlyMap<number, number>
}

export function copyHeader(header: VhdHeader): VhdHeader {
  return { ...header, parentLocatorEntry: header.parentLocatorEntry.map(entry => ({ ...entry })) }
}

/**
 * Lays out the start of a canonical VHD whose blocks come in `blockOrder`.
 * `locators[i]` is the data of parent locator entry i (the header's entry gives its platform code).
 */
export function canonicalHead(
  footer: VhdFooter,
  sourceHeader: VhdHeader,
  locators: readonly (Buffer | undefined)[],
  blockOrder: readonly number[],
  fullBlockSize: number,
): CanonicalHead {
  const header = copyHeader(sourceHeader)
  const batSize = computeBatSize(header.maxTableEntries)
  header.tableOffset = FOOTER_SIZE + HEADER_SIZE
  let offset = FOOTER_SIZE + HEADER_SIZE + batSize
  const locatorPieces: Buffer[] = []
  for (let i = 0; i < PARENT_LOCATOR_ENTRIES; i++) {
    const entry = header.parentLocatorEntry[i]!
    const data = locators[i]
    if (data === undefined || data.length === 0 || entry.platformDataSpace === 0) {
      header.parentLocatorEntry[i] = { ...entry, platformDataOffset: 0, platformDataSpace: 0, platformDataLength: 0 }
      continue
    }
    const space = entry.platformDataSpace * SECTOR_SIZE
    entry.platformDataOffset = offset
    const padded = Buffer.alloc(space)
    data.copy(padded)
    locatorPieces.push(padded)
    offset += space
  }
  const bat = Buffer.alloc(batSize, 0xff)
  const sectorOf = new Map<number, number>()
  let sector = offset / SECTOR_SIZE
  for (const id of blockOrder) {
    bat.writeUInt32BE(sector, id * 4)
    sectorOf.set(id, sector)
    sector += fullBlockSize / SECTOR_SIZE
  }
  return { header, pieces: [packFooter(footer), packHeader(header), bat, ...locatorPieces], sectorOf }
}

/** the BAT's used entries, ordered by position in the file */
export function blockOrderOfBat(bat: Buffer, maxTableEntries: number): number[] {
  const used: [id: number, sector: number][] = []
  for (let id = 0; id < maxTableEntries; id++) {
    const sector = bat.readUInt32BE(id * 4)
    if (sector !== BLOCK_UNUSED) used.push([id, sector])
  }
  return used.sort((a, b) => a[1] - b[1]).map(([id]) => id)
}

/**
 * sha256 and length of the canonical serialization of the VHD at `path` (file or alias), blocks
 * in ascending order, read block by block.
 */
export async function hashCanonicalVhd(handler: RemoteHandler, path: string, signal?: AbortSignal): Promise<{ sha256: string; size: number }> {
  const disposable = await openVhd(handler, path, { flags: 'r' })
  try {
    const vhd = disposable.value
    await vhd.readBlockAllocationTable()
    const { header, footer } = vhd
    const locators: (Buffer | undefined)[] = []
    for (let i = 0; i < PARENT_LOCATOR_ENTRIES; i++) {
      locators.push(header.parentLocatorEntry[i]!.platformDataSpace > 0 ? (await vhd.readParentLocator(i)).data : undefined)
    }
    const order: number[] = []
    for (let id = 0; id < header.maxTableEntries; id++) {
      if (vhd.containsBlock(id)) order.push(id)
    }
    const head = canonicalHead(footer, header, locators, order, vhd.fullBlockSize)
    const hash = createHash('sha256')
    let size = 0
    for (const piece of head.pieces) {
      hash.update(piece)
      size += piece.length
    }
    for (const id of order) {
      signal?.throwIfAborted()
      const block = await vhd.readBlock(id)
      hash.update(block.buffer)
      size += block.buffer.length
    }
    const rawFooter = head.pieces[0]!
    hash.update(rawFooter)
    size += rawFooter.length
    return { sha256: hash.digest('hex'), size }
  } finally {
    await disposable.dispose()
  }
}
