/**
 * Delta backup transfer: a VM on the simulated pool, its disk changed between runs. Each round
 * changes the same scattered blocks with new bytes, streams the raw delta from the pool into a
 * file (the baseline), then runs our backup job (snapshot, transfer, commit).
 * The raw stream runs first: our run moves the reference snapshot the delta is taken from.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, type Layer } from '../lib/fixtures.js'
import { loadSimulatedPool } from '../lib/simulated-pool.js'
import { Prng } from '../lib/prng.js'
import { type CaseContext, type ImplResult, Series, stepTimes } from '../lib/series.js'
import { BLOCK_SIZE, maxTableEntriesFor } from '../lib/vhd-format.js'
import type { PoolAccess, S3Target } from '../tasks/protocol.js'
import { BENCH_JOB } from './layout.js'

export interface TransferShape {
  readonly diskSize: number
  /** blocks holding data before the first backup */
  readonly initialBlocks: number
  /** blocks changed before each delta */
  readonly changedBlocks: number
  /** how many of the changed blocks held data already */
  readonly overlapping: number
}

export interface TransferCaseRun {
  readonly ours: ImplResult
  readonly raw: ImplResult
  /** the pool's `VM.snapshot` before each raw stream (not in the raw stream's time) */
  readonly rawSnapshot: ImplResult
  /** from the start of our run to its snapshot taken: part of our run's time, never subtracted */
  readonly oursSnapshot: ImplResult
}

function layerFor(seed: number, round: number): Layer {
  return { stem: `round-${round}`, uuid: Buffer.alloc(16), timestampMs: 0, blocks: [], contentSeed: (seed * 31 + round) >>> 0 }
}

export async function runTransferCase(
  ctx: CaseContext,
  opts: {
    readonly name: string
    readonly shape: TransferShape
    readonly rounds: number
    /** back up to this remote (VHD directories) and upload the raw stream to S3, instead of the local folder and a file */
    readonly s3?: { readonly remoteUrl: string; readonly upload: (round: number) => S3Target }
  },
): Promise<TransferCaseRun> {
  const ours = new Series()
  const raw = new Series()
  const start = await loadSimulatedPool()
  if (!start.ok) {
    ours.record({ ok: false, skipped: true, reason: start.reason })
    raw.record({ ok: false, skipped: true, reason: start.reason })
    return { ours: ours.result(), raw: raw.result(), rawSnapshot: stepTimes([]), oursSnapshot: stepTimes([]) }
  }
  const { shape } = opts
  const seed = ctx.seed + 3
  const prng = new Prng(seed)
  const entries = maxTableEntriesFor(shape.diskSize)
  const initial = prng.distinct(shape.initialBlocks, entries)
  const changed = [...prng.sample(initial, shape.overlapping), ...prng.distinct(shape.changedBlocks - shape.overlapping, entries, new Set(initial))]
  const content = new BlockContent(seed)
  const work = join(ctx.workDir, opts.name)
  const remoteRoot = join(work, 'remote')
  await mkdir(remoteRoot, { recursive: true })
  const pool = await start.value({ dataDir: join(work, 'pool'), inventory: 'empty' })
  const access: PoolAccess = { url: pool.url, user: pool.user, password: pool.password }
  const snapshotTimes: number[] = []
  const oursSnapshotTimes: number[] = []
  try {
    const { vm, vdis } = pool.sim.createVm({ name: 'benchmark', disks: [{ name: 'data', size: shape.diskSize }] })
    const vdi = vdis[0]!
    const buffer = Buffer.allocUnsafe(BLOCK_SIZE)
    const writeBlocks = async (blocks: readonly number[], layer: Layer): Promise<void> => {
      for (const block of blocks) await pool.sim.writeGuest(vdi, block * BLOCK_SIZE, content.fill(buffer, layer, block))
    }
    await writeBlocks(initial, layerFor(seed, 0))
    const job = {
      kind: 'run-job',
      pool: access,
      remoteRoot,
      ...(opts.s3 === undefined ? {} : { remoteUrl: opts.s3.remoteUrl }),
      vm,
      jobId: BENCH_JOB,
      retention: opts.rounds + 2,
      useVhdDirectory: opts.s3 !== undefined,
    } as const
    ctx.log(`${opts.name}: first (full) backup`)
    const full = new Series()
    full.record(await runInWorker(job))
    const withOurs = full.active
    let reference: string | undefined
    if (!withOurs) {
      ctx.log(`${opts.name}: ${(full.result() as { reason: string }).reason}`)
      // no backup job to make the reference snapshot: the raw stream keeps its own snapshots
      const first = await runInWorker({ kind: 'raw-export', pool: access, vm, vdi, output: join(work, 'first.vhd'), referenceOnly: true })
      reference = first.ok ? String(first.result.detail?.['snapshotVm']) : undefined
    }
    for (let r = 1; r <= opts.rounds; r++) {
      await writeBlocks(changed, layerFor(seed, r))
      const output = join(work, `raw-${r}.vhd`)
      const upload = opts.s3?.upload(r)
      const rawTask = { kind: 'raw-export', pool: access, vm, vdi, output, ...(upload === undefined ? {} : { upload }) } as const
      const rawResult = raw.active ? raw.record(await runInWorker(rawTask)) : undefined
      await rm(output, { force: true })
      const snapshotVm = rawResult?.detail?.['snapshotVm']
      if (typeof rawResult?.detail?.['snapshotMs'] === 'number') snapshotTimes.push(rawResult.detail['snapshotMs'])
      if (typeof snapshotVm === 'string') {
        if (withOurs) {
          pool.sim.destroyVm(snapshotVm)
        } else {
          if (reference !== undefined) pool.sim.destroyVm(reference)
          reference = snapshotVm
        }
      }
      if (withOurs && ours.active) {
        const result = ours.record(await runInWorker(job, { cpuProfileDir: ctx.cpuProfileDir }))
        const modes = result?.detail?.['modes']
        const snapshotMs = result?.detail?.['snapshotMs']
        if (typeof snapshotMs === 'number') oursSnapshotTimes.push(snapshotMs)
        ours.verify(result === undefined ? null : Array.isArray(modes) && modes.every(mode => mode === 'delta'))
      }
      ctx.log(`${opts.name}: round ${r}/${opts.rounds} done`)
    }
    return {
      ours: withOurs ? ours.result() : full.result(),
      raw: raw.result(),
      rawSnapshot: stepTimes(snapshotTimes),
      oursSnapshot: stepTimes(oursSnapshotTimes),
    }
  } finally {
    await pool.close()
    await rm(work, { recursive: true, force: true })
  }
}
