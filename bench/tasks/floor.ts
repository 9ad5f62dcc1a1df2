/**
 * The I/O floor of a merge of a VHD file chain (one parent, one child): the least any merge of
 * these inputs must do. It reads the child's blocks (bitmaps skipped) and `pwrite`s each into the
 * parent where a merge puts it: over the parent's copy of the block when the parent has one, else
 * appended after the parent's last block; then the parent's BAT (one write) and its trailing
 * footer, `fsync` of the parent, one `rename` of the parent over the child (the merged disk is
 * the kept restore point's, under the child's name, and the child's blocks are freed) and `fsync`
 * of the folder. No state file, no checks: a merge that rewrites the parent in place does at
 * least this; one that writes elsewhere writes at least as many bytes. Plain `fs`, nothing else.
 */
import { open, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fsyncPath, peakRssMiB } from '../lib/fs-utils.js'
import { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, batSize, parseFooterAndHeader } from '../lib/vhd-format.js'
import type { Task, TaskOutcome } from './protocol.js'

type FileHandle = Awaited<ReturnType<typeof open>>

async function readStructure(file: FileHandle) {
  const head = Buffer.alloc(FOOTER_SIZE + HEADER_SIZE)
  await file.read(head, 0, head.length, 0)
  const vhd = parseFooterAndHeader(head.subarray(0, FOOTER_SIZE), head.subarray(FOOTER_SIZE))
  const bat = Buffer.alloc(batSize(vhd.maxTableEntries))
  await file.read(bat, 0, bat.length, vhd.tableOffset)
  return { vhd, bat, footer: head.subarray(0, FOOTER_SIZE) }
}

export async function measureFloor(task: Extract<Task, { kind: 'floor' }>): Promise<TaskOutcome> {
  const start = performance.now()
  const child = await open(task.child, 'r')
  const parent = await open(task.parent, 'r+')
  let bytes = 0
  try {
    const [c, p] = await Promise.all([readStructure(child), readStructure(parent)])
    const { blockSize, maxTableEntries } = c.vhd
    const bitmapSize = Math.ceil(blockSize / SECTOR_SIZE / 8 / SECTOR_SIZE) * SECTOR_SIZE
    // new blocks go where the parent's trailing footer is
    let end = (await parent.stat()).size - FOOTER_SIZE
    const buffer = Buffer.allocUnsafe(bitmapSize + blockSize)
    for (let blockId = 0; blockId < maxTableEntries; blockId++) {
      const sector = c.bat.readUInt32BE(blockId * 4)
      if (sector === BLOCK_UNUSED) continue
      await child.read(buffer, bitmapSize, blockSize, sector * SECTOR_SIZE + bitmapSize)
      const existing = p.bat.readUInt32BE(blockId * 4)
      if (existing !== BLOCK_UNUSED) {
        await parent.write(buffer, bitmapSize, blockSize, existing * SECTOR_SIZE + bitmapSize)
      } else {
        // a new block needs its bitmap too (every sector present)
        buffer.fill(0xff, 0, bitmapSize)
        await parent.write(buffer, 0, bitmapSize + blockSize, end)
        p.bat.writeUInt32BE(end / SECTOR_SIZE, blockId * 4)
        end += bitmapSize + blockSize
      }
      bytes += blockSize
    }
    await parent.write(p.bat, 0, p.bat.length, p.vhd.tableOffset)
    await parent.write(p.footer, 0, FOOTER_SIZE, end)
    await parent.sync()
  } finally {
    await child.close()
    await parent.close()
  }
  await rename(task.parent, task.child)
  await fsyncPath(dirname(task.parent))
  return { ok: true, result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), bytes } }
}
