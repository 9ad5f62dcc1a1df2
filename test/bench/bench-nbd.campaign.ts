/**
 * Smoke run of the benchmark's nbd_transfer case on tiny inputs (eight backup runs in worker
 * processes: too long for npm test): the results have the shape scripts read and every run was a
 * delta. No timing is asserted.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { QUICK_CONFIG, runBenchmark } from '../../bench/run.js'

const MiB = 2 ** 20

describe('benchmark: nbd_transfer (tiny sizes)', () => {
  it('measures the HTTP export and NBD with 1, 2, 4 connections, every run a delta; the reference bytes with and without CBT', async () => {
    const workRoot = await mkdtemp(join(tmpdir(), 'bench-nbd-'))
    try {
      const results = await runBenchmark(
        { ...QUICK_CONFIG, rounds: 1, cases: ['nbd_transfer'], nbdTransfer: { diskSize: 64 * MiB, initialBlocks: 4, changedBlocks: 4, overlapping: 2 } },
        { workRoot, log: () => {} },
      )
      const section = results.nbd_transfer!
      for (const key of ['export', 'nbd_1', 'nbd_2', 'nbd_4']) {
        const result = section[key] as { status: string; verified?: boolean }
        assert.equal(result.status, 'measured', key)
        assert.equal(result.verified, true, `${key}: every run a delta`)
      }
      for (const key of ['nbd_1_over_export', 'nbd_2_over_export', 'nbd_4_over_export']) assert.equal(typeof section[key], 'number', key)
      const bytes = section['reference_sr_bytes'] as Record<string, number>
      assert.ok(bytes['nbd_2']! < bytes['export']!, 'the CBT reference holds less than the export one')
    } finally {
      await rm(workRoot, { recursive: true, force: true })
    }
  })
})
