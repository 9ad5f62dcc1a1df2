/**
 * Sector-level block arithmetic shared by the file and directory merges. A VHD block is a
 * sector bitmap (one bit per sector, most significant bit first) followed by the block's data;
 * in a differencing VHD only the sectors whose bit is set belong to that layer.
 */

export interface BlockGeometry {
  /** data bytes per block (2 MiB for every VHD XAPI writes) */
  readonly blockSize: number
  /** bitmap bytes in front of each block's data, a whole number of sectors */
  readonly bitmapSize: number
}

export const SECTOR = 512

export function fullBlockSize(geometry: BlockGeometry): number {
  return geometry.bitmapSize + geometry.blockSize
}

export function geometryOf(blockSize: number): BlockGeometry {
  const bitmapBytes = blockSize / SECTOR / 8
  return { blockSize, bitmapSize: Math.max(1, Math.ceil(bitmapBytes / SECTOR)) * SECTOR }
}

/** Whether every sector of the block is present in this layer. */
export function isFullBitmap(bitmap: Buffer, geometry: BlockGeometry): boolean {
  const sectors = geometry.blockSize / SECTOR
  const wholeBytes = sectors >> 3
  for (let i = 0; i < wholeBytes; i++) {
    if (bitmap[i] !== 0xff) {
      return false
    }
  }
  const rest = sectors & 7
  const mask = (0xff << (8 - rest)) & 0xff
  return rest === 0 || (bitmap[wholeBytes]! & mask) === mask
}

function hasSector(bitmap: Buffer, sector: number): boolean {
  return (bitmap[sector >> 3]! & (0x80 >> (sector & 7))) !== 0
}

/**
 * Overlay, in place, the sectors `layer` (a child's block: bitmap and data) holds onto `out` (a
 * full's block: bitmap and data); the bitmap becomes the union of both.
 */
export function overlayBlock(out: Buffer, layer: Buffer, geometry: BlockGeometry): void {
  const { bitmapSize, blockSize } = geometry
  const sectors = blockSize / SECTOR
  let sector = 0
  while (sector < sectors) {
    if (!hasSector(layer, sector)) {
      sector++
      continue
    }
    const start = sector
    while (sector < sectors && hasSector(layer, sector)) {
      sector++
    }
    layer.copy(out, bitmapSize + start * SECTOR, bitmapSize + start * SECTOR, bitmapSize + sector * SECTOR)
  }
  for (let i = 0; i < bitmapSize; i++) {
    out[i] = out[i]! | layer[i]!
  }
}

/**
 * The merged block (bitmap and data) of a full VHD: `base` (the full's own block, if it has
 * one) overlaid, oldest first, by the sectors each child layer holds. Sectors no layer holds are
 * zeros; the merged bitmap is the union of the layers' bitmaps.
 */
export function composeBlock(base: Buffer | undefined, layers: Buffer[], geometry: BlockGeometry): Buffer {
  const out = Buffer.alloc(fullBlockSize(geometry))
  if (base !== undefined) {
    base.copy(out, 0, 0, out.length)
  }
  for (const layer of layers) {
    overlayBlock(out, layer, geometry)
  }
  return out
}
