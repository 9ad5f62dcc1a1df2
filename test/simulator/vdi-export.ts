/**
 * What `export_raw_vdi` sends: a full export holds every block with allocated data; a delta holds
 * the blocks whose content differs from the base VDI. Both cost what is allocated in the files,
 * not the virtual size.
 */
import { open, type FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'

import { allocatedBlocks } from './sparse-extents.js'
import { VHD_BLOCK_SIZE, vhdStream } from './vhd-stream.js'

export interface DiskFile {
  uuid: string
  path: string
  virtualSize: number
}

async function readBlock(file: FileHandle, index: number): Promise<Buffer> {
  const buffer = Buffer.alloc(VHD_BLOCK_SIZE)
  let done = 0
  while (done < VHD_BLOCK_SIZE) {
    const { bytesRead } = await file.read(buffer, done, VHD_BLOCK_SIZE - done, index * VHD_BLOCK_SIZE + done)
    if (bytesRead === 0) break // past the end: the rest stays zero
    done += bytesRead
  }
  return buffer
}

/** Blocks where `disk` and `base` differ, among those allocated in either. */
async function differingBlocks(disk: DiskFile, base: DiskFile, file: FileHandle): Promise<number[]> {
  const blockCount = Math.ceil(disk.virtualSize / VHD_BLOCK_SIZE)
  const candidates = new Set([
    ...(await allocatedBlocks(disk.path, VHD_BLOCK_SIZE)),
    ...(await allocatedBlocks(base.path, VHD_BLOCK_SIZE)),
  ])
  const baseFile = await open(base.path, 'r')
  try {
    const differing: number[] = []
    for (const index of [...candidates].sort((a, b) => a - b)) {
      if (index >= blockCount) continue
      const [ours, theirs] = await Promise.all([readBlock(file, index), readBlock(baseFile, index)])
      if (!ours.equals(theirs)) differing.push(index)
    }
    return differing
  } finally {
    await baseFile.close()
  }
}

/** A VHD stream of `disk`, differencing against `base` when given. Closes its file when done. */
export async function exportVhd(disk: DiskFile, base?: DiskFile): Promise<Readable & { length: number }> {
  const file = await open(disk.path, 'r')
  try {
    const blockCount = Math.ceil(disk.virtualSize / VHD_BLOCK_SIZE)
    const blocks =
      base === undefined
        ? (await allocatedBlocks(disk.path, VHD_BLOCK_SIZE)).filter(index => index < blockCount)
        : await differingBlocks(disk, base, file)
    const stream = vhdStream({
      virtualSize: disk.virtualSize,
      uuid: disk.uuid,
      blocks,
      readBlock: index => readBlock(file, index),
      parent: base === undefined ? undefined : { uuid: base.uuid, time: new Date() },
    })
    stream.once('close', () => void file.close())
    return stream
  } catch (error) {
    await file.close()
    throw error
  }
}
