/**
 * What `export_raw_vdi` sends: a full export holds every block with allocated data; a delta holds
 * the blocks whose content differs from the base VDI. Both cost what is allocated in the files,
 * not the virtual size.
 */
import { Readable } from 'node:stream'

import type { VdiFiles, VdiReader } from './vdi-files.js'
import { VHD_BLOCK_SIZE, vhdStream } from './vhd-stream.js'

export interface DiskFile {
  uuid: string
  virtualSize: number
}

async function readBlock(reader: VdiReader, index: number, buffer: Buffer = Buffer.allocUnsafe(VHD_BLOCK_SIZE)): Promise<Buffer> {
  let done = 0
  while (done < VHD_BLOCK_SIZE) {
    const bytesRead = await reader.read(buffer, done, VHD_BLOCK_SIZE - done, index * VHD_BLOCK_SIZE + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  // past the end of the disk: zeros
  buffer.fill(0, done)
  return buffer
}

/** Blocks where `disk` and `base` differ, among those allocated in either. */
async function differingBlocks(files: VdiFiles, disk: DiskFile, base: DiskFile, reader: VdiReader): Promise<number[]> {
  const blockCount = Math.ceil(disk.virtualSize / VHD_BLOCK_SIZE)
  const candidates = new Set([...(await files.allocatedBlocks(disk.uuid, VHD_BLOCK_SIZE)), ...(await files.allocatedBlocks(base.uuid, VHD_BLOCK_SIZE))])
  const baseReader = await files.reader(base.uuid)
  try {
    const differing: number[] = []
    const buffers = [Buffer.allocUnsafe(VHD_BLOCK_SIZE), Buffer.allocUnsafe(VHD_BLOCK_SIZE)] as const
    for (const index of [...candidates].sort((a, b) => a - b)) {
      if (index >= blockCount) continue
      const [ours, theirs] = await Promise.all([readBlock(reader, index, buffers[0]), readBlock(baseReader, index, buffers[1])])
      if (!ours.equals(theirs)) differing.push(index)
    }
    return differing
  } finally {
    await baseReader.close()
  }
}

/** A VHD stream of `disk`, differencing against `base` when given. Closes its reader when done. */
export async function exportVhd(files: VdiFiles, disk: DiskFile, base?: DiskFile): Promise<Readable & { length: number }> {
  const reader = await files.reader(disk.uuid)
  try {
    const blockCount = Math.ceil(disk.virtualSize / VHD_BLOCK_SIZE)
    const blocks =
      base === undefined
        ? (await files.allocatedBlocks(disk.uuid, VHD_BLOCK_SIZE)).filter(index => index < blockCount)
        : await differingBlocks(files, disk, base, reader)
    const stream = vhdStream({
      virtualSize: disk.virtualSize,
      uuid: disk.uuid,
      blocks,
      readBlock: index => readBlock(reader, index),
      parent: base === undefined ? undefined : { uuid: base.uuid, time: new Date() },
    })
    stream.once('close', () => void reader.close())
    return stream
  } catch (error) {
    await reader.close()
    throw error
  }
}

/** The raw bytes of `disk`, streamed in 1 MiB reads. Closes its reader when done. */
export async function exportRaw(files: VdiFiles, disk: DiskFile): Promise<Readable> {
  const reader = await files.reader(disk.uuid)
  const CHUNK = 1024 * 1024
  async function* bytes(): AsyncGenerator<Buffer> {
    for (let position = 0; position < disk.virtualSize; ) {
      const buffer = Buffer.alloc(Math.min(CHUNK, disk.virtualSize - position))
      const bytesRead = await reader.read(buffer, 0, buffer.length, position)
      if (bytesRead === 0) break
      yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
      position += bytesRead
    }
  }
  const stream = Readable.from(bytes(), { objectMode: false })
  stream.once('close', () => void reader.close())
  return stream
}
