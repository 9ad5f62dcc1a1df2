/**
 * First delta after a full: the base check before a delta must cost the base's structure, its
 * block-checksum list and a few sampled blocks, not the full's size (issue 10, finding 9: it read
 * the whole full). Each round backs up a fresh VM holding `fullBlocks` blocks in full (not timed),
 * then changes the same `changedBlocks` blocks twice: the first delta after the full and a later
 * delta of the same change are both timed; the target is their ratio.
 */
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent } from '../lib/fixtures.js'
import { loadSimulatedPool, guestLayer } from '../lib/simulated-pool.js'
import { Prng } from '../lib/prng.js'
import { type CaseContext, type ImplResult, Series } from '../lib/series.js'
import { BLOCK_SIZE, maxTableEntriesFor } from '../lib/vhd-format.js'
import type { PoolAccess } from '../tasks/protocol.js'
import { BENCH_JOB } from './layout.js'

export interface FirstDeltaShape {
  readonly diskSize: number
  /** blocks holding data in the full */
  readonly fullBlocks: number
  /** blocks changed before each delta (the same ones) */
  readonly changedBlocks: number
}

export interface FirstDeltaCaseRun {
  readonly first: ImplResult
  readonly later: ImplResult
}

export async function runFirstDeltaCase(ctx: CaseContext, shape: FirstDeltaShape, rounds: number): Promise<FirstDeltaCaseRun> {
  const first = new Series()
  const later = new Series()
  const start = await loadSimulatedPool()
  if (!start.ok) {
    first.record({ ok: false, skipped: true, reason: start.reason })
    later.record({ ok: false, skipped: true, reason: start.reason })
    return { first: first.result(), later: later.result() }
  }
  const seed = ctx.seed + 5
  const prng = new Prng(seed)
  const entries = maxTableEntriesFor(shape.diskSize)
  const full = prng.distinct(shape.fullBlocks, entries)
  const changed = prng.sample(full, shape.changedBlocks)
  const content = new BlockContent(seed)
  const work = join(ctx.workDir, 'first_delta')
  const remoteRoot = join(work, 'remote')
  await mkdir(remoteRoot, { recursive: true })
  const pool = await start.value({ dataDir: join(work, 'pool'), inventory: 'empty' })
  const access: PoolAccess = { url: pool.url, user: pool.user, password: pool.password }
  try {
    const buffer = Buffer.allocUnsafe(BLOCK_SIZE)
    for (let r = 0; r < rounds; r++) {
      const { vm, vdis } = pool.sim.createVm({ name: `first-delta-${r}`, disks: [{ name: 'data', size: shape.diskSize }] })
      const vdi = vdis[0]!
      const write = async (blocks: readonly number[], n: number): Promise<void> => {
        for (const block of blocks) await pool.sim.writeGuest(vdi, block * BLOCK_SIZE, content.fill(buffer, guestLayer(seed, n), block))
      }
      const job = { kind: 'run-job', pool: access, remoteRoot, vm, jobId: BENCH_JOB, retention: 10, useVhdDirectory: false } as const
      await write(full, 0)
      ctx.log(`first_delta: round ${r + 1}/${rounds}: full of ${shape.fullBlocks} blocks`)
      const fullRun = new Series()
      fullRun.record(await runInWorker(job))
      if (!fullRun.active) {
        const reason = (fullRun.result() as { reason: string }).reason
        first.record({ ok: false, skipped: false, reason })
        later.record({ ok: false, skipped: false, reason })
        break
      }
      for (const [series, n] of [[first, 1], [later, 2]] as const) {
        await write(changed, n)
        const result = series.record(await runInWorker(job, { cpuProfileDir: ctx.cpuProfileDir }))
        const modes = result?.detail?.['modes']
        series.verify(result === undefined ? null : Array.isArray(modes) && modes.every(mode => mode === 'delta'))
      }
    }
    ctx.log('first_delta: done')
    return { first: first.result(), later: later.result() }
  } finally {
    await pool.close()
    await rm(work, { recursive: true, force: true })
  }
}
