/**
 * The I/O floor of a merge: read the child's blocks (bitmaps skipped) and pwrite each at its
 * offset into a new sparse raw file of the virtual size, then fsync it and its folder (a merge's
 * result is flushed the same way). Plain `fs`, nothing else.
 */
import { open } from 'node:fs/promises'
import { dirname } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fsyncPath, peakRssMiB } from '../lib/fs-utils.js'
import { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, batSize, parseFooterAndHeader } from '../lib/vhd-format.js'
import type { Task, TaskOutcome } from './protocol.js'

export async function measureFloor(task: Extract<Task, { kind: 'floor' }>): Promise<TaskOutcome> {
  const start = performance.now()
  const child = await open(task.child, 'r')
  const output = await open(task.output, 'wx')
  let bytes = 0
  try {
    const head = Buffer.alloc(FOOTER_SIZE + HEADER_SIZE)
    await child.read(head, 0, head.length, 0)
    const vhd = parseFooterAndHeader(head.subarray(0, FOOTER_SIZE), head.subarray(FOOTER_SIZE))
    const bat = Buffer.alloc(batSize(vhd.maxTableEntries))
    await child.read(bat, 0, bat.length, vhd.tableOffset)
    await output.truncate(vhd.virtualSize)
    const bitmapSize = Math.ceil(vhd.blockSize / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
    const buffer = Buffer.allocUnsafe(vhd.blockSize)
    for (let blockId = 0; blockId < vhd.maxTableEntries; blockId++) {
      const sector = bat.readUInt32BE(blockId * 4)
      if (sector === BLOCK_UNUSED) continue
      await child.read(buffer, 0, vhd.blockSize, sector * SECTOR_SIZE + bitmapSize)
      await output.write(buffer, 0, vhd.blockSize, blockId * vhd.blockSize)
      bytes += vhd.blockSize
    }
    await output.sync()
  } finally {
    await child.close()
    await output.close()
  }
  await fsyncPath(dirname(task.output))
  return { ok: true, result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), bytes } }
}

