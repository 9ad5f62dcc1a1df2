/** Merge measurements: ours, vhd-lib's and Xen Orchestra's current merge engine. */
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { countBlockIo } from '../lib/counting-handler.js'
import { fsyncPath, fsyncTree, peakRssMiB, processIo } from '../lib/fs-utils.js'
import { openLocalHandler, openRemoteHandler } from '../lib/handler.js'
import { loadMergeChain } from '../lib/optional.js'
import { mergeVhdChain } from '../lib/vhd-lib.js'
import { xoMergeChain } from '../lib/xo-merge.js'
import type { Task, TaskOutcome } from './protocol.js'

type MergeTask = Extract<Task, { kind: 'merge' }>

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
  const opened = task.url === undefined ? await openLocalHandler(task.root) : await openRemoteHandler(task.url)
  try {
    const counted = task.countBlockIo ? countBlockIo(opened.handler) : undefined
    const handler = counted?.handler ?? opened.handler
    const chain = [...task.chain]
    const ioBefore = await processIo()
    const start = performance.now()
    let mergedPath = chain[chain.length - 1]!
    if (mergeChain !== undefined) {
      mergedPath = (await mergeChain.value(handler, chain)).mergedPath
    } else if (task.impl === 'xo') {
      await xoMergeChain(handler, chain)
    } else {
      // as Xen Orchestra called it when it cleaned a VM's backups, before backup-archive
      await mergeVhdChain(handler, chain, { removeUnused: true, mergeBlockConcurrency: 2 })
    }
    if (task.url === undefined) await flushMerged(task.root, mergedPath)
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
