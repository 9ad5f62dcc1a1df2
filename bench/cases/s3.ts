/**
 * S3 (s3rver on 127.0.0.1, VHD directories):
 * - delta transfer: our backup job to the bucket against the raw delta stream of the same change
 *   sent as one plain multipart upload (the client @xen-orchestra/fs uses underneath);
 * - merge of a VHD directory chain uploaded to the bucket, in blocks per second: ours, vhd-lib's
 *   `mergeVhdChain` and Xen Orchestra's current merge engine, each on its own fresh upload of
 *   the same chain, rotated each round, each result read back and checked.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, expectedDiskHash, planChain, writeVhdDirectory } from '../lib/fixtures.js'
import { openRemoteHandler } from '../lib/handler.js'
import { loadOptional } from '../lib/optional.js'
import { type CaseContext, type ImplResult, Series, rotate } from '../lib/series.js'
import { formatUuid } from '../lib/vhd-format.js'
import { hashVhd } from '../lib/verify.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { benchDiskDir } from './layout.js'
import type { MergeShape } from './merge.js'
import { type TransferCaseRun, type TransferShape, runTransferCase } from './transfer.js'

export interface S3Shape {
  readonly transfer: TransferShape
  readonly merge: MergeShape
}

export type S3MergeImpl = 'ours' | 'vhd-lib' | 'xo'

export interface S3CaseRun {
  readonly transfer: TransferCaseRun | undefined
  readonly merge: Readonly<Record<S3MergeImpl, ImplResult>>
  readonly childBlocks: number
  readonly skipped?: string
}

interface S3Server {
  readonly endpoint: string
  url(bucket: string, dir?: string): string
  close(): Promise<void>
}
type StartS3 = () => Promise<S3Server>

const IMPLS: readonly S3MergeImpl[] = ['ours', 'vhd-lib', 'xo']

/** every file under `dir`, paths relative to it */
async function filesUnder(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const name of await readdir(join(dir, prefix))) {
    const rel = prefix === '' ? name : `${prefix}/${name}`
    if ((await stat(join(dir, rel))).isDirectory()) out.push(...(await filesUnder(dir, rel)))
    else out.push(rel)
  }
  return out
}

async function upload(handler: RemoteHandler, pristine: string): Promise<void> {
  for (const rel of await filesUnder(pristine)) await handler.outputFile(rel, await readFile(join(pristine, rel)))
}

async function verifyMerged(handler: RemoteHandler, mergedPath: string, chain: readonly string[], expected: string, childUuid: string): Promise<boolean> {
  if (mergedPath.replace(/^\/+/, '') !== chain[chain.length - 1]) return false
  const parentGone = await handler.readFile(chain[0]!).then(
    () => false,
    () => true,
  )
  if (!parentGone) return false
  try {
    const merged = await hashVhd(handler, mergedPath)
    return merged.hash === expected && merged.uuid === childUuid
  } catch {
    return false
  }
}

export async function runS3Case(ctx: CaseContext, shape: S3Shape): Promise<S3CaseRun> {
  const series = new Map(IMPLS.map(impl => [impl, new Series()]))
  const mergeResults = (): Record<S3MergeImpl, ImplResult> => Object.fromEntries([...series].map(([k, s]) => [k, s.result()])) as Record<S3MergeImpl, ImplResult>
  const start = await loadOptional<StartS3>('test/helpers/s3.ts', 'startS3')
  if (!start.ok) {
    for (const s of series.values()) s.record({ ok: false, skipped: true, reason: start.reason })
    return { transfer: undefined, merge: mergeResults(), childBlocks: shape.merge.childBlocks, skipped: start.reason }
  }
  const s3 = await start.value()
  try {
    // transfer: our job to the bucket, the raw stream as one multipart upload
    s3.url('bench-upload')
    const transfer = await runTransferCase(ctx, {
      name: 's3_delta_transfer',
      shape: shape.transfer,
      rounds: ctx.rounds,
      s3: {
        remoteUrl: s3.url('bench-transfer'),
        upload: round => ({ endpoint: s3.endpoint, bucket: 'bench-upload', key: `raw-${round}.vhd`, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }),
      },
    })

    // merge: a VHD directory chain, uploaded afresh for every run
    const seed = ctx.seed + 9
    const model = planChain(seed, {
      virtualSize: shape.merge.virtualSize,
      fullBlocks: shape.merge.parentBlocks,
      deltas: [{ blocks: shape.merge.childBlocks, overlapping: shape.merge.overlapping }],
    })
    const content = new BlockContent(seed)
    const pristine = join(ctx.workDir, 's3-merge-pristine')
    const diskRel = benchDiskDir()
    ctx.log('s3: writing the merge chain (directory)')
    const paths = [await writeVhdDirectory(join(pristine, diskRel), model, 0, content), await writeVhdDirectory(join(pristine, diskRel), model, 1, content)]
    const chainRel = paths.map(path => `${diskRel}/${basename(path)}`)
    const expected = expectedDiskHash(model, model.layers, content)
    const childUuid = formatUuid(model.layers[1]!.uuid)
    for (let r = 0; r < ctx.rounds; r++) {
      for (const impl of rotate(IMPLS, r)) {
        const s = series.get(impl)!
        if (!s.active) continue
        const url = s3.url('bench-merge', `r${r}-${impl}`)
        const opened = await openRemoteHandler(url)
        try {
          await upload(opened.handler, pristine)
          const result = s.record(
            await runInWorker({ kind: 'merge', impl, root: '', url, chain: chainRel, countBlockIo: false }, { cpuProfileDir: impl === 'ours' ? ctx.cpuProfileDir : undefined }),
          )
          if (result !== undefined) s.verify(await verifyMerged(opened.handler, result.mergedPath ?? chainRel[1]!, chainRel, expected, childUuid))
          await opened.handler.rmtree('xo-vm-backups').catch(() => {})
        } finally {
          await opened.dispose()
        }
      }
      ctx.log(`s3: merge round ${r + 1}/${ctx.rounds} done`)
    }
    await rm(pristine, { recursive: true, force: true })
    return { transfer, merge: mergeResults(), childBlocks: shape.merge.childBlocks }
  } finally {
    await s3.close()
  }
}
