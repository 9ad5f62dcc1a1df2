/**
 * A job of many VMs: `vms` VMs of `disksPerVm` disks each on the simulated pool, backed up in full
 * once (not timed); then, per round, the whole job is timed at each concurrency (1, 2 and 4 VMs at
 * once), each run after a small change to every disk, and once more with no change at all (the
 * fixed cost of a VM's run: snapshot, base check, metadata, retention listing).
 * The baseline is the same job one VM at a time: 4 at once should take at most 0.4 of it.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent } from '../lib/fixtures.js'
import { loadSimulatedPool, guestLayer } from '../lib/simulated-pool.js'
import { Prng } from '../lib/prng.js'
import { type CaseContext, type ImplResult, Series, rotate } from '../lib/series.js'
import { BLOCK_SIZE, maxTableEntriesFor } from '../lib/vhd-format.js'
import type { PoolAccess, TaskResult } from '../tasks/protocol.js'
import { BENCH_JOB } from './layout.js'

export interface JobManyVmsShape {
  readonly vms: number
  readonly disksPerVm: number
  readonly diskSize: number
  /** blocks holding data before the full */
  readonly initialBlocks: number
  /** blocks of each disk changed before each timed run (none before the no-change run) */
  readonly changedBlocks: number
  /** measure 2 at once too (the smoke test leaves it out) */
  readonly withTwoAtOnce: boolean
}

export const CONCURRENCIES = [1, 2, 4] as const
export type JobRunKind = 'at_1' | 'at_2' | 'at_4' | 'no_change_at_1'

/** CPU time spent during one run of the whole job, and the wall time it took */
export interface JobCpu {
  /** our worker process (the job), user + system */
  readonly oursMs: number
  /** the runner process, where the simulated pool serves the exports */
  readonly poolMs: number
  readonly wallMs: number
}

export interface JobManyVmsCaseRun {
  readonly results: Readonly<Partial<Record<JobRunKind, ImplResult>>>
  /** per kind, the CPU of its last run: how many of the machine's cores the job kept busy */
  readonly cpu: Readonly<Partial<Record<JobRunKind, JobCpu>>>
}

const KINDS: readonly JobRunKind[] = ['at_1', 'at_2', 'at_4', 'no_change_at_1']
const concurrencyOf = (kind: JobRunKind): number => (kind === 'at_2' ? 2 : kind === 'at_4' ? 4 : 1)

/** every VM succeeded, every disk as a delta (a run with no change still writes a delta of it) */
function allDeltas(result: TaskResult | undefined, vms: number, disks: number): boolean | null {
  if (result === undefined) return null
  const modes = result.detail?.['modes']
  return Array.isArray(modes) && modes.length === vms * disks && modes.every(mode => mode === 'delta')
}

export async function runJobManyVmsCase(ctx: CaseContext, shape: JobManyVmsShape, rounds: number): Promise<JobManyVmsCaseRun> {
  const kinds = KINDS.filter(kind => kind !== 'at_2' || shape.withTwoAtOnce)
  const series = new Map(kinds.map(kind => [kind, new Series()]))
  const cpu: Partial<Record<JobRunKind, JobCpu>> = {}
  const results = (): Partial<Record<JobRunKind, ImplResult>> => Object.fromEntries([...series].map(([k, s]) => [k, s.result()]))
  const start = await loadSimulatedPool()
  if (!start.ok) {
    for (const s of series.values()) s.record({ ok: false, skipped: true, reason: start.reason })
    return { results: results(), cpu }
  }
  const seed = ctx.seed + 8
  const prng = new Prng(seed)
  const entries = maxTableEntriesFor(shape.diskSize)
  const content = new BlockContent(seed)
  const work = join(ctx.workDir, 'job_many_vms')
  const remoteRoot = join(work, 'remote')
  await mkdir(remoteRoot, { recursive: true })
  const pool = await start.value({ dataDir: join(work, 'pool'), inventory: 'empty' })
  const access: PoolAccess = { url: pool.url, user: pool.user, password: pool.password }
  try {
    const disks: { vdi: string; initial: number[]; changed: number[] }[] = []
    const vms: string[] = []
    for (let v = 0; v < shape.vms; v++) {
      const created = pool.sim.createVm({
        name: `job-vm-${v}`,
        disks: Array.from({ length: shape.disksPerVm }, (_, d) => ({ name: `disk-${d}`, size: shape.diskSize })),
      })
      vms.push(created.vm)
      for (const vdi of created.vdis) {
        const initial = prng.distinct(shape.initialBlocks, entries)
        disks.push({ vdi, initial, changed: prng.sample(initial, Math.min(shape.changedBlocks, initial.length)) })
      }
    }
    const buffer = Buffer.allocUnsafe(BLOCK_SIZE)
    const write = async (pick: (disk: (typeof disks)[number]) => readonly number[], n: number): Promise<void> => {
      for (const disk of disks) for (const block of pick(disk)) await pool.sim.writeGuest(disk.vdi, block * BLOCK_SIZE, content.fill(buffer, guestLayer(seed, n), block))
    }
    await write(disk => disk.initial, 0)
    const job = (concurrency: number) =>
      ({ kind: 'run-job', pool: access, remoteRoot, vm: vms[0]!, vms, concurrency, jobId: BENCH_JOB, retention: rounds * kinds.length + 2, useVhdDirectory: false }) as const
    ctx.log(`job_50_vms: full backup of ${shape.vms} VMs × ${shape.disksPerVm} disks`)
    const full = new Series()
    full.record(await runInWorker(job(4)))
    if (!full.active) {
      const failure = full.result()
      for (const s of series.values()) s.record({ ok: false, skipped: failure.status === 'skipped', reason: (failure as { reason: string }).reason })
      return { results: results(), cpu }
    }
    let n = 1
    for (let r = 0; r < rounds; r++) {
      for (const kind of rotate(kinds, r)) {
        const s = series.get(kind)!
        if (!s.active) continue
        if (kind !== 'no_change_at_1') await write(disk => disk.changed, n++)
        const poolCpuAtStart = process.cpuUsage()
        const result = s.record(await runInWorker(job(concurrencyOf(kind)), { cpuProfileDir: ctx.cpuProfileDir }))
        const poolCpu = process.cpuUsage(poolCpuAtStart)
        const oursMs = result?.detail?.['cpuMs']
        if (result !== undefined && typeof oursMs === 'number') cpu[kind] = { oursMs, poolMs: (poolCpu.user + poolCpu.system) / 1000, wallMs: result.ms }
        s.verify(allDeltas(result, shape.vms, shape.disksPerVm))
        ctx.log(`job_50_vms: round ${r + 1}/${rounds}: ${kind} done`)
      }
    }
    return { results: results(), cpu }
  } finally {
    await pool.close()
    await rm(work, { recursive: true, force: true })
  }
}
