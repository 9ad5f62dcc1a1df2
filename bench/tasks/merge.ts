/** Merge measurements: ours, vhd-lib's, and the I/O floor. */
import { open, readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { countBlockIo } from '../lib/counting-handler.js'
import { fsyncPath, fsyncTree, peakRssMiB, processIo } from '../lib/fs-utils.js'
import { openLocalHandler } from '../lib/handler.js'
import { loadMergeChain } from '../lib/optional.js'
import { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, batSize, parseFooterAndHeader } from '../lib/vhd-format.js'
import { mergeVhdChain } from '../lib/vhd-lib.js'
import type { Task, TaskOutcome } from './protocol.js'

type FloorTask = Extract<Task, { kind: 'floor' }>
type MergeTask = Extract<Task, { kind: 'merge' }>

export async function measureFloor(task: FloorTask): Promise<TaskOutcome> {
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
  return { ok: true, result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), bytes } }
}

/** flush a merged VHD: the file, or the alias and its whole data folder, and the folders holding them */
async function flushMerged(root: string, mergedPath: string): Promise<void> {
  const path = join(root, mergedPath)
  if (path.endsWith('.alias.vhd')) {
    const target = resolve(dirname(path), (await readFile(path, 'utf8')).trim())
    await fsyncTree(target)
    await fsyncPath(dirname(target))
  }
  await fsyncPath(path)
  await fsyncPath(dirname(path))
}

export async function measureMerge(task: MergeTask): Promise<TaskOutcome> {
  const mergeChain = task.impl === 'ours' ? await loadMergeChain() : undefined
  if (mergeChain !== undefined && !mergeChain.ok) return { ok: false, skipped: true, reason: mergeChain.reason }
  const opened = await openLocalHandler(task.root)
  try {
    const counted = task.countBlockIo ? countBlockIo(opened.handler) : undefined
    const handler = counted?.handler ?? opened.handler
    const chain = [...task.chain]
    const ioBefore = await processIo()
    const start = performance.now()
    let mergedPath = chain[chain.length - 1]!
    if (mergeChain !== undefined) {
      mergedPath = (await mergeChain.value(handler, chain)).mergedPath
    } else {
      // as Xen Orchestra calls it when it cleans a VM's backups
      await mergeVhdChain(handler, chain, { removeUnused: true, mergeBlockConcurrency: 2 })
    }
    await flushMerged(task.root, mergedPath)
    const ms = performance.now() - start
    const ioAfter = await processIo()
    return {
      ok: true,
      result: {
        ms,
        peakRssMiB: peakRssMiB(),
        mergedPath,
        blockIo: counted === undefined ? undefined : { ...counted.counts },
        processIo: { rchar: ioAfter.rchar - ioBefore.rchar, wchar: ioAfter.wchar - ioBefore.wchar },
      },
    }
  } finally {
    await opened.dispose()
  }
}
