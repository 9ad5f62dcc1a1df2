/**
 * Smoke test of the benchmark on tiny inputs: every case runs, the results have the shape that
 * scripts read, and every merged disk was checked against the expected content hash. No timing
 * is asserted here: targets are checked by the benchmark itself. A campaign (npm run
 * test:campaign, run by CI): running every case takes minutes even at these sizes.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockContent, expectedDiskHash, planChain, writeVhdDirectory, writeVhdFile } from '../../bench/lib/fixtures.js'
import { openLocalHandler } from '../../bench/lib/handler.js'
import { hashVhd } from '../../bench/lib/verify.js'
import type { ImplResult } from '../../bench/lib/series.js'
import { type BenchConfig, QUICK_CONFIG, runBenchmark } from '../../bench/run.js'

const MiB = 2 ** 20

function implResult(value: unknown): ImplResult {
  assert.ok(typeof value === 'object' && value !== null && 'status' in value, 'an implementation result')
  return value as ImplResult
}

/** every case but nbd_transfer (eight backup runs in worker processes): bench-nbd.campaign.ts runs it */
const TINY: BenchConfig = {
  ...QUICK_CONFIG,
  cases: QUICK_CONFIG.cases.filter(name => name !== 'nbd_transfer'),
  rounds: 1,
  hugeRounds: 1,
  merge: { virtualSize: 64 * MiB, parentBlocks: 8, childBlocks: 4, overlapping: 2 },
  hugeVirtualSize: 4096 * MiB,
  transfer: { diskSize: 64 * MiB, initialBlocks: 4, changedBlocks: 4, overlapping: 2 },
  nbdTransfer: { diskSize: 64 * MiB, initialBlocks: 4, changedBlocks: 4, overlapping: 2 },
  firstDelta: { diskSize: 64 * MiB, fullBlocks: 8, changedBlocks: 1 },
  restore: { virtualSize: 64 * MiB, fullBlocks: 8, deltas: 10, deltaBlocks: 2, deltaOverlapping: 1 },
  listing: { vms: 2, pointsPerVm: 3, disksPerVm: 2 },
  // the smallest job that still runs VMs at once: 2 VMs of one disk, at 1 and 4 at once
  jobManyVms: { vms: 2, disksPerVm: 1, diskSize: 64 * MiB, initialBlocks: 2, changedBlocks: 1, withTwoAtOnce: false },
  s3: {
    transfer: { diskSize: 64 * MiB, initialBlocks: 2, changedBlocks: 2, overlapping: 1 },
    merge: { virtualSize: 64 * MiB, parentBlocks: 4, childBlocks: 2, overlapping: 1 },
  },
}

describe('benchmark (quick mode, tiny sizes)', () => {
  let workRoot: string
  before(async () => {
    workRoot = await mkdtemp(join(tmpdir(), 'bench-smoke-'))
  })
  after(async () => {
    await rm(workRoot, { recursive: true, force: true })
  })

  it('generates seeded chains whose content hash vhd-lib reads back, in both formats', async () => {
    const model = planChain(7, { virtualSize: 64 * MiB, fullBlocks: 6, deltas: [{ blocks: 3, overlapping: 2 }] })
    assert.deepEqual(planChain(7, { virtualSize: 64 * MiB, fullBlocks: 6, deltas: [{ blocks: 3, overlapping: 2 }] }), model)
    const [full, delta] = model.layers
    assert.equal(delta!.blocks.filter(b => full!.blocks.includes(b)).length, 2)
    const content = new BlockContent(7)
    for (const write of [writeVhdFile, writeVhdDirectory]) {
      const dir = await mkdtemp(join(workRoot, 'fixture-'))
      const fullPath = await write(dir, model, 0, content)
      const deltaPath = await write(dir, model, 1, content)
      const { handler, dispose } = await openLocalHandler(dir)
      try {
        const readFull = await hashVhd(handler, fullPath.slice(dir.length + 1))
        assert.equal(readFull.hash, expectedDiskHash(model, [full!], content))
        const readDelta = await hashVhd(handler, deltaPath.slice(dir.length + 1))
        assert.equal(readDelta.hash, expectedDiskHash(model, [delta!], content))
        assert.equal(readDelta.diskType, 4)
        assert.notEqual(readFull.hash, expectedDiskHash(model, model.layers, content))
      } finally {
        await dispose()
      }
    }
  })

  it('runs every case (but nbd_transfer) and verifies every merged disk', async () => {
    const results = await runBenchmark(TINY, { workRoot, log: () => {} })
    assert.deepEqual(await readdir(workRoot).then(names => names.filter(n => n.startsWith('run-'))), [], 'temporary data removed')
    assert.equal(typeof results.date, 'string')
    assert.equal(results.load_at_start.length, 3)
    assert.equal(typeof results.machine.cores, 'number')

    const mergeFile = results.merge_vhd_file!
    const mergeDir = results.merge_vhd_directory!
    for (const key of ['ours_over_floor', 'ours_over_vhdlib']) assert.ok(key in mergeFile, key)
    assert.ok('ours_over_vhdlib' in mergeDir)
    assert.ok('ours_over_raw' in results.delta_transfer!)
    assert.ok('ours_over_single_file' in results.restore_read!)
    assert.ok('first_over_later' in results.first_delta!)
    for (const key of ['first_delta', 'later_delta']) {
      const result = implResult(results.first_delta![key])
      if (result.status === 'measured') assert.equal(result.verified, true, `${key}: every run a delta`)
    }
    assert.ok(typeof results.peak_rss_mib === 'object')
    const listing = results.listing!
    for (const key of ['api_over_plain', 'cli_over_plain_process', 'retention_over_plain']) assert.ok(key in listing, key)
    for (const key of ['list_restore_points', 'cli_list', 'retention_pass', 'plain', 'plain_process']) {
      const result = implResult(listing[key])
      assert.equal(result.status, 'measured', `listing.${key}: ${result.status === 'measured' ? '' : result.reason}`)
      if (result.status === 'measured') assert.equal(result.verified, true, `listing.${key}: every restore point found, none removed`)
    }
    const vsXo = results.merge_vs_xo!
    for (const key of ['file_local_xo', 'directory_local_xo']) {
      const result = implResult(vsXo[key])
      assert.equal(result.status, 'measured', `merge_vs_xo.${key}: ${result.status === 'measured' ? '' : result.reason}`)
      if (result.status === 'measured') assert.equal(result.verified, true, `merge_vs_xo.${key}: merged disk verified`)
    }
    assert.ok('file_local_ours_over_xo' in vsXo && 'directory_local_ours_over_xo' in vsXo)
    const s3 = results.s3!
    for (const key of ['transfer_ours', 'transfer_raw_multipart', 'merge_ours', 'merge_vhd_lib', 'merge_xo']) {
      const result = implResult(s3[key])
      assert.equal(result.status, 'measured', `s3.${key}: ${result.status === 'measured' ? '' : result.reason}`)
      if (result.status === 'measured' && key !== 'transfer_raw_multipart') assert.equal(result.verified, true, `s3.${key}: verified`)
    }
    assert.ok('directory_s3_ours_over_xo' in vsXo)
    const job = results.job_50_vms!
    for (const key of ['at_1', 'at_4', 'no_change_at_1']) {
      const result = implResult(job[key])
      assert.equal(result.status, 'measured', `job_50_vms.${key}: ${result.status === 'measured' ? '' : result.reason}`)
      if (result.status === 'measured') assert.equal(result.verified, true, `job_50_vms.${key}: every VM a delta`)
    }
    assert.ok('at_4_over_at_1' in job && 'fixed_cost_per_vm_ms' in job)
    const floorTarget = results.targets.find(t => t.name.startsWith('merge_vhd_file: ours / I/O floor'))
    assert.ok(floorTarget !== undefined)
    if (typeof floorTarget.value === 'number' && floorTarget.value < 1) assert.equal(floorTarget.verdict, 'floor wrong')

    const measuredOrSkipped = [mergeFile['ours'], mergeFile['vhd_lib'], mergeFile['floor'], mergeDir['ours'], mergeDir['vhd_lib']]
    for (const result of measuredOrSkipped.map(implResult)) {
      if (result.status === 'measured') {
        assert.equal(result.verified, true)
        assert.equal(result.runs_ms.length, 1)
      } else {
        assert.match(result.reason, /^skipped: src\/\S+ not available/)
      }
    }
    // the baselines do not depend on the product: they are always measured
    for (const baseline of [mergeFile['vhd_lib'], mergeFile['floor'], mergeDir['vhd_lib']]) {
      assert.equal(implResult(baseline).status, 'measured')
    }
    for (const target of results.targets) assert.ok(target.pass === null || typeof target.pass === 'boolean')
  })
})
