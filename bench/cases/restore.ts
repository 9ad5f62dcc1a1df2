/**
 * Restore read: a chain of one full and several deltas read as one VHD stream, every block
 * checked against its VHD's block checksums (a sidecar beside each VHD, as the writer leaves
 * it), against streaming a single file of the same size. Compared by throughput (bytes per second).
 * The same file read in blocks, each hashed on the reading thread, is measured too: how much of the
 * gap is the hashing every check needs.
 */
import { open, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, type ChainModel, expectedDiskHash, planChain, writeVhdFile } from '../lib/fixtures.js'
import { fsyncTree, warmPageCache } from '../lib/fs-utils.js'
import { openLocalHandler } from '../lib/handler.js'
import { loadChainReader, loadOptional } from '../lib/optional.js'
import { type CaseContext, type ImplResult, Series, rotate } from '../lib/series.js'
import { formatUuid } from '../lib/vhd-format.js'
import { hashVhdStream } from '../lib/verify.js'
import { benchDiskDir } from './layout.js'

export interface RestoreShape {
  readonly virtualSize: number
  readonly fullBlocks: number
  readonly deltas: number
  readonly deltaBlocks: number
  readonly deltaOverlapping: number
}

export interface RestoreCaseRun {
  readonly model: ChainModel
  readonly ours: ImplResult
  readonly singleFile: ImplResult
  /** the single file read in stored blocks (2 MiB + bitmap), each hashed on the reading thread: informative, no target */
  readonly singleFileChecked: ImplResult
}

/** writes `bytes` bytes of incompressible content, flushed */
async function writeFiller(path: string, bytes: number, content: BlockContent, model: ChainModel): Promise<void> {
  const file = await open(path, 'wx')
  try {
    const buffer = Buffer.allocUnsafe(2 * 1024 * 1024)
    for (let position = 0, i = 0; position < bytes; position += buffer.length, i++) {
      content.fill(buffer, model.layers[0]!, i)
      await file.write(buffer, 0, Math.min(buffer.length, bytes - position), position)
    }
    await file.sync()
  } finally {
    await file.close()
  }
}

type ComputeBlockChecksums = (handler: unknown, path: string) => Promise<unknown>
type WriteSidecar = (handler: unknown, path: string, list: unknown) => Promise<void>

/** the block-checksum sidecar of each VHD, as writeVhd leaves it (computed here: the fixtures write the VHDs) */
async function writeSidecars(root: string, vhds: readonly string[]): Promise<{ ok: true } | { ok: false; reason: string }> {
  const compute = await loadOptional<ComputeBlockChecksums>('src/repository/integrity/structure.ts', 'computeBlockChecksums')
  const write = await loadOptional<WriteSidecar>('src/repository/integrity/sidecar.ts', 'writeSidecar')
  if (!compute.ok) return compute
  if (!write.ok) return write
  const opened = await openLocalHandler(root)
  try {
    for (const vhd of vhds) await write.value(opened.handler, vhd, await compute.value(opened.handler, vhd))
  } finally {
    await opened.dispose()
  }
  return { ok: true }
}

export async function runRestoreCase(ctx: CaseContext, shape: RestoreShape): Promise<RestoreCaseRun> {
  const seed = ctx.seed + 4
  const model = planChain(seed, {
    virtualSize: shape.virtualSize,
    fullBlocks: shape.fullBlocks,
    deltas: Array.from({ length: shape.deltas }, () => ({ blocks: shape.deltaBlocks, overlapping: shape.deltaOverlapping })),
  })
  const content = new BlockContent(seed)
  const root = join(ctx.workDir, 'restore')
  const diskDir = join(root, benchDiskDir())
  ctx.log(`restore_read: writing a chain of ${model.layers.length} VHD files`)
  const paths: string[] = []
  for (let i = 0; i < model.layers.length; i++) paths.push(await writeVhdFile(diskDir, model, i, content))
  const newest = `${benchDiskDir()}/${basename(paths[paths.length - 1]!)}`
  const sidecars = await writeSidecars(root, paths.map(path => `${benchDiskDir()}/${basename(path)}`))
  if (!sidecars.ok) ctx.log(`restore_read: ${sidecars.reason}: blocks read unchecked`)

  const ours = new Series()
  const single = new Series()
  const singleChecked = new Series()
  const reader = await loadChainReader()
  let outputBytes: number | undefined
  if (!reader.ok) {
    ours.record({ ok: false, skipped: true, reason: reader.reason })
  } else {
    // the chain's output, checked once against the model; its length sizes the single file
    const opened = await openLocalHandler(root)
    try {
      const { stream } = await reader.value(opened.handler, newest)
      const hashed = await hashVhdStream(stream)
      outputBytes = hashed.bytes
      ours.verify(hashed.hash === expectedDiskHash(model, model.layers, content) && hashed.uuid === formatUuid(model.layers.at(-1)!.uuid))
    } catch (error) {
      ours.record({ ok: false, skipped: false, reason: `error: ${(error as Error).message}` })
    } finally {
      await opened.dispose()
    }
  }
  // without our stream, the single file has the size of the chain's merged content
  const blocks = new Set(model.layers.flatMap(layer => layer.blocks)).size
  const singleFile = join(ctx.workDir, 'restore-single-file')
  await writeFiller(singleFile, outputBytes ?? blocks * (2 * 1024 * 1024 + 512), content, model)
  await fsyncTree(root)

  for (let r = 0; r < ctx.rounds; r++) {
    for (const impl of rotate(['ours', 'single', 'single_checked'] as const, r)) {
      if (impl === 'ours' && ours.active) {
        await warmPageCache([root])
        ours.record(await runInWorker({ kind: 'read-chain', root, path: newest }, { cpuProfileDir: ctx.cpuProfileDir }))
      } else if (impl === 'single') {
        await warmPageCache([singleFile])
        single.record(await runInWorker({ kind: 'read-file', file: singleFile }))
      } else if (impl === 'single_checked') {
        await warmPageCache([singleFile])
        singleChecked.record(await runInWorker({ kind: 'read-file', file: singleFile, checkBlock: 2 * 1024 * 1024 + 512 }))
      }
    }
  }
  ctx.log('restore_read: done')
  await rm(root, { recursive: true, force: true })
  await rm(singleFile, { force: true })
  return { model, ours: ours.result(), singleFile: single.result(), singleFileChecked: singleChecked.result() }
}
