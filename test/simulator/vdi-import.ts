/**
 * What `import_raw_vdi` does with a body: a VHD (dynamic or differencing) is parsed with vhd-lib
 * and each block present is written over the VDI, sector by sector as its bitmap says; raw bytes
 * are written from offset 0.
 */
import type { Readable } from 'node:stream'

import type { VdiFiles, VdiWriter } from './vdi-files.js'

import { XapiFault } from './xapi-fault.js'
import { parseVhdStream } from './vhd-lib-parts.js'

const SECTOR = 512

async function writeBlock(file: VdiWriter, offset: number, bitmap: Buffer, data: Buffer, limit: number): Promise<void> {
  const sectors = data.length / SECTOR
  let run = -1
  for (let sector = 0; sector <= sectors; ++sector) {
    const set = sector < sectors && (bitmap[sector >> 3]! & (0x80 >> (sector & 7))) !== 0
    if (set && run === -1) run = sector
    if (!set && run !== -1) {
      const start = offset + run * SECTOR
      const end = Math.min(offset + sector * SECTOR, limit)
      if (end > start) await file.write(data, run * SECTOR, end - start, start)
      run = -1
    }
  }
}

/** Applies a VHD stream over the VDI `uuid` (a disk of `virtualSize` bytes). Returns bytes written. */
export async function importVhd(files: VdiFiles, uuid: string, virtualSize: number, body: Readable): Promise<number> {
  const file = await files.writer(uuid)
  let written = 0
  try {
    let blockSize = 0
    for await (const item of parseVhdStream(body)) {
      if (item.type === 'footer' && item.footer.currentSize > virtualSize) {
        throw new XapiFault('VDI_IO_ERROR', [`VHD of ${item.footer.currentSize} bytes larger than the VDI (${virtualSize})`])
      } else if (item.type === 'header') {
        blockSize = item.header.blockSize
      } else if (item.type === 'block') {
        await writeBlock(file, item.id * blockSize, item.bitmap, item.data, virtualSize)
        written += item.data.length
      }
    }
  } finally {
    await file.close()
  }
  return written
}

/** Writes a raw stream over the VDI `uuid` from offset 0; rejects data past `virtualSize`. */
export async function importRaw(files: VdiFiles, uuid: string, virtualSize: number, body: Readable): Promise<number> {
  const file = await files.writer(uuid)
  let offset = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (offset + chunk.length > virtualSize) {
        throw new XapiFault('VDI_IO_ERROR', [`raw data larger than the VDI (${virtualSize})`])
      }
      await file.write(chunk, 0, chunk.length, offset)
      offset += chunk.length
    }
  } finally {
    await file.close()
  }
  return offset
}
