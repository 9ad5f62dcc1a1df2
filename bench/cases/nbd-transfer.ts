/**
 * Delta transfer over NBD with changed block tracking, against the HTTP export of the same delta,
 * on the simulated pool of profile `xcp-ng-8.3-nbd` (its network of purpose `nbd`: TLS). One VM,
 * one disk; four jobs back it up, each with its own reference snapshot and chain: `export` (HTTP
 * export), and `nbd` with 1, 2 and 4 connections per disk. Each round changes the same scattered
 * blocks with new bytes, then runs the four jobs (order rotated): each reads the same delta.
 * Timed: the whole run, and its transfer step (the disk read into its VHD on the remote). After
 * the last round, the bytes each job's reference snapshot holds on the SR: its data for the HTTP
 * export, its CBT log for NBD.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, type Layer } from '../lib/fixtures.js'
import { loadSimulatedPool } from '../lib/simulated-pool.js'
import { Prng } from '../lib/prng.js'
import { type CaseContext, type ImplResult, rotate, Series } from '../lib/series.js'
import { BLOCK_SIZE, maxTableEntriesFor } from '../lib/vhd-format.js'
import type { PoolAccess } from '../tasks/protocol.js'
import type { TransferShape } from './transfer.js'

export const NBD_IMPLS = ['export', 'nbd_1', 'nbd_2', 'nbd_4'] as const
export type NbdImpl = (typeof NBD_IMPLS)[number]

export interface NbdTransferCaseRun {
  readonly runs: Readonly<Record<NbdImpl, ImplResult>>
  /** median transfer-step time per implementation, ms */
  readonly transferMs: Readonly<Record<NbdImpl, number | null>>
  /** bytes the job's reference snapshot holds on the SR after its last run */
  readonly referenceBytes: Readonly<Record<NbdImpl, number | null>>
}

function median(values: number[]): number | null {
  values.sort((a, b) => a - b)
  return values.length === 0 ? null : Math.round(values[Math.floor(values.length / 2)]!)
}

function layerFor(seed: number, round: number): Layer {
  return { stem: `round-${round}`, uuid: Buffer.alloc(16), timestampMs: 0, blocks: [], contentSeed: (seed * 37 + round) >>> 0 }
}

const jobOf = (impl: NbdImpl): { transport: 'export' | 'nbd'; nbdConnections?: number } =>
  impl === 'export' ? { transport: 'export' } : { transport: 'nbd', nbdConnections: Number(impl.slice(4)) }

export async function runNbdTransferCase(ctx: CaseContext, opts: { readonly shape: TransferShape; readonly rounds: number }): Promise<NbdTransferCaseRun> {
  const series = Object.fromEntries(NBD_IMPLS.map(impl => [impl, new Series()])) as Record<NbdImpl, Series>
  const transfer = Object.fromEntries(NBD_IMPLS.map(impl => [impl, [] as number[]])) as Record<NbdImpl, number[]>
  const referenceBytes = Object.fromEntries(NBD_IMPLS.map(impl => [impl, null])) as Record<NbdImpl, number | null>
  const done = (): NbdTransferCaseRun => ({
    runs: Object.fromEntries(NBD_IMPLS.map(impl => [impl, series[impl].result()])) as Record<NbdImpl, ImplResult>,
    transferMs: Object.fromEntries(NBD_IMPLS.map(impl => [impl, median(transfer[impl])])) as Record<NbdImpl, number | null>,
    referenceBytes,
  })
  const start = await loadSimulatedPool()
  if (!start.ok) {
    for (const impl of NBD_IMPLS) series[impl].record({ ok: false, skipped: true, reason: start.reason })
    return done()
  }
  const { shape } = opts
  const seed = ctx.seed + 7
  const prng = new Prng(seed)
  const entries = maxTableEntriesFor(shape.diskSize)
  const initial = prng.distinct(shape.initialBlocks, entries)
  const changed = [...prng.sample(initial, shape.overlapping), ...prng.distinct(shape.changedBlocks - shape.overlapping, entries, new Set(initial))]
  const content = new BlockContent(seed)
  const work = join(ctx.workDir, 'nbd_transfer')
  const remoteRoot = join(work, 'remote')
  await mkdir(remoteRoot, { recursive: true })
  const pool = await start.value({ dataDir: join(work, 'pool'), inventory: 'empty', profile: 'xcp-ng-8.3-nbd' })
  const access: PoolAccess = { url: pool.url, user: pool.user, password: pool.password }
  try {
    const { vm, vdis } = pool.sim.createVm({ name: 'benchmark', disks: [{ name: 'data', size: shape.diskSize }] })
    const vdi = vdis[0]!
    const buffer = Buffer.allocUnsafe(BLOCK_SIZE)
    const writeBlocks = async (blocks: readonly number[], layer: Layer): Promise<void> => {
      for (const block of blocks) await pool.sim.writeGuest(vdi, block * BLOCK_SIZE, content.fill(buffer, layer, block))
    }
    await writeBlocks(initial, layerFor(seed, 0))
    const task = (impl: NbdImpl) =>
      ({ kind: 'run-job', pool: access, remoteRoot, vm, jobId: `bench-${impl.replace('_', '-')}`, retention: opts.rounds + 2, useVhdDirectory: false, ...jobOf(impl) }) as const
    ctx.log('nbd_transfer: first (full) backups')
    for (const impl of NBD_IMPLS) {
      const full = await runInWorker(task(impl))
      if (!full.ok) series[impl].record(full)
    }
    for (let r = 1; r <= opts.rounds; r++) {
      await writeBlocks(changed, layerFor(seed, r))
      for (const impl of rotate(NBD_IMPLS, r)) {
        if (!series[impl].active) continue
        const result = series[impl].record(await runInWorker(task(impl), { cpuProfileDir: ctx.cpuProfileDir }))
        const modes = result?.detail?.['modes']
        const ms = result?.detail?.['transferMs']
        if (typeof ms === 'number') transfer[impl].push(ms)
        series[impl].verify(result === undefined ? null : Array.isArray(modes) && modes.every(mode => mode === 'delta'))
      }
      ctx.log(`nbd_transfer: round ${r}/${opts.rounds} done`)
    }
    for (const impl of NBD_IMPLS) {
      const jobId = task(impl).jobId
      const reference = pool.sim.all('VDI').find(record => record.is_a_snapshot === true && (record.other_config as Record<string, string> | undefined)?.['continuous-delta:job'] === jobId)
      referenceBytes[impl] = reference === undefined ? null : await pool.sim.bytesOnSr(reference.uuid)
    }
    return done()
  } finally {
    await pool.close()
    await rm(work, { recursive: true, force: true })
  }
}
