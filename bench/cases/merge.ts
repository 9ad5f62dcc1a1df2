/**
 * Merge cases: a full VHD and one differencing child, in the file or the directory format.
 * Each round merges fresh, flushed copies with each implementation in turn (rotating the order),
 * then checks the merged disk's content hash and footer UUID against the model.
 */
import { access, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, type ChainModel, expectedDiskHash, planChain, writeVhdDirectory, writeVhdFile } from '../lib/fixtures.js'
import { durableCopy, fsyncTree } from '../lib/fs-utils.js'
import { openLocalHandler } from '../lib/handler.js'
import { type CaseContext, type ImplResult, Series, rotate } from '../lib/series.js'
import { formatUuid } from '../lib/vhd-format.js'
import { hashVhd } from '../lib/verify.js'
import type { TaskResult } from '../tasks/protocol.js'
import { benchDiskDir } from './layout.js'

export interface MergeShape {
  readonly virtualSize: number
  readonly parentBlocks: number
  readonly childBlocks: number
  /** how many of the child's blocks the parent also holds */
  readonly overlapping: number
}

export type MergeImpl = 'ours' | 'vhd-lib' | 'xo' | 'floor'

export interface MergeCaseRun {
  readonly model: ChainModel
  readonly results: Readonly<Partial<Record<MergeImpl, ImplResult>>>
  /** ours: block file bytes read/written through the handler, highest over the runs */
  readonly oursBlockIo?: { readonly read: number; readonly written: number; readonly bitmapRead: number }
  /** ours: bytes through read/write system calls, highest over the runs */
  readonly oursProcessIo?: { readonly rchar: number; readonly wchar: number }
}

export interface MergeCaseOptions {
  readonly name: string
  readonly format: 'file' | 'directory'
  readonly shape: MergeShape
  readonly impls: readonly MergeImpl[]
  readonly rounds: number
  readonly seedOffset: number
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

export async function runMergeCase(ctx: CaseContext, opts: MergeCaseOptions): Promise<MergeCaseRun> {
  const { format, shape } = opts
  const seed = ctx.seed + opts.seedOffset
  const model = planChain(seed, {
    virtualSize: shape.virtualSize,
    fullBlocks: shape.parentBlocks,
    deltas: [{ blocks: shape.childBlocks, overlapping: shape.overlapping }],
  })
  const content = new BlockContent(seed)
  const child = model.layers[1]!
  const diskRel = benchDiskDir()
  const pristine = join(ctx.workDir, `${opts.name}-pristine`)
  ctx.log(`${opts.name}: writing the chain (${format})`)
  const write = format === 'file' ? writeVhdFile : writeVhdDirectory
  const paths = [await write(pristine, model, 0, content), await write(pristine, model, 1, content)]
  await fsyncTree(pristine)
  const chainRel = paths.map(path => `${diskRel}/${basename(path)}`)
  const expectedMerged = expectedDiskHash(model, model.layers, content)

  const series = new Map(opts.impls.map(impl => [impl, new Series()]))
  let blockIo: { read: number; written: number; bitmapRead: number } | undefined
  let processIo: { rchar: number; wchar: number } | undefined
  const keepMax = (result: TaskResult): void => {
    if (result.blockIo !== undefined) {
      blockIo = {
        read: Math.max(blockIo?.read ?? 0, result.blockIo.read),
        written: Math.max(blockIo?.written ?? 0, result.blockIo.written),
        bitmapRead: Math.max(blockIo?.bitmapRead ?? 0, result.blockIo.bitmapRead),
      }
    }
    if (result.processIo !== undefined) {
      processIo = {
        rchar: Math.max(processIo?.rchar ?? 0, result.processIo.rchar),
        wchar: Math.max(processIo?.wchar ?? 0, result.processIo.wchar),
      }
    }
  }

  for (let r = 0; r < opts.rounds; r++) {
    for (const impl of rotate(opts.impls, r)) {
      const s = series.get(impl)!
      if (!s.active) continue
      // every implementation, the floor included, reads its own fresh copy of the chain, made and
      // flushed the same way, so that none reads an input the others do not
      const root = join(ctx.workDir, `${opts.name}-${r}-${impl}`)
      await durableCopy(pristine, join(root, diskRel), { linkBlocks: format === 'directory' })
      if (impl === 'floor') {
        const parent = join(root, chainRel[0]!)
        const result = s.record(await runInWorker({ kind: 'floor', parent, child: join(root, chainRel[1]!) }))
        // the parent, written over and renamed over the child, reads as the merged disk
        if (result !== undefined) s.verify(await hashesTo(root, chainRel[1]!, expectedMerged))
        await rm(root, { recursive: true, force: true })
        continue
      }
      const outcome = await runInWorker(
        { kind: 'merge', impl, root, chain: chainRel, countBlockIo: impl === 'ours' && format === 'directory' },
        { cpuProfileDir: impl === 'ours' ? ctx.cpuProfileDir : undefined },
      )
      const result = s.record(outcome)
      if (result !== undefined) {
        if (impl === 'ours') keepMax(result)
        s.verify(await verifyMerged(root, result.mergedPath ?? chainRel[1]!, chainRel, expectedMerged, formatUuid(child.uuid)))
      }
      await rm(root, { recursive: true, force: true })
    }
    ctx.log(`${opts.name}: round ${r + 1}/${opts.rounds} done`)
  }
  await rm(pristine, { recursive: true, force: true })
  return {
    model,
    results: Object.fromEntries([...series].map(([impl, s]) => [impl, s.result()])),
    oursBlockIo: blockIo,
    oursProcessIo: processIo,
  }
}

/** the merged disk has the expected content and the child's UUID, under the child's name, and the parent is gone */
async function verifyMerged(root: string, mergedPath: string, chain: readonly string[], expected: string, childUuid: string): Promise<boolean> {
  if (mergedPath.replace(/^\/+/, '') !== chain[chain.length - 1]) return false
  if (await exists(join(root, chain[0]!))) return false
  const opened = await openLocalHandler(root)
  try {
    const merged = await hashVhd(opened.handler, mergedPath)
    return merged.hash === expected && merged.uuid === childUuid
  } catch {
    return false
  } finally {
    await opened.dispose()
  }
}

/** the VHD at `path` has the expected content hash */
async function hashesTo(root: string, path: string, expected: string): Promise<boolean> {
  const opened = await openLocalHandler(root)
  try {
    return (await hashVhd(opened.handler, path)).hash === expected
  } catch {
    return false
  } finally {
    await opened.dispose()
  }
}
