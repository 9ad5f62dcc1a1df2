/**
 * Campaign: a job on a CBT + NBD pool (xcp-ng-8.3-nbd) for many runs, each with random guest
 * writes, a random transport (auto / nbd / export) and NBD connection count, and now and then
 * something that breaks the tracking or the transfer (CBT disabled, the disk moved to another SR,
 * list_changed_blocks failing, an NBD connection cut mid-read, the network's NBD purpose removed).
 * Every run must succeed, and every restore point kept restore the guest's bytes as they were.
 * Seeded: CBT_CAMPAIGN_SEED replays another run (the seed is printed).
 */
import assert from 'node:assert/strict'

import type { JobSpec } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { hashRestoredDisk, MiB, RecordingReporter, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { SeededRandom } from '../reliability/random.js'

const RUNS = Number(process.env['CBT_CAMPAIGN_RUNS'] ?? 25)
const DISK = 48 * MiB
const RETENTION = 5

describe('campaign: changed block tracking and NBD, random transports and faults', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness({ profile: 'xcp-ng-8.3-nbd', inventory: 'empty' })
  })
  after(async function () {
    await harness?.close()
  })

  it(`${RUNS} runs: every one succeeds, every restore point kept is byte-exact`, async function () {
    const seed = Number(process.env['CBT_CAMPAIGN_SEED'] ?? 1414)
    console.log(`      CBT/NBD campaign seed ${seed} (replay: CBT_CAMPAIGN_SEED=${seed})`)
    const random = new SeededRandom(seed)
    const { sim } = harness.pool
    const { vm, vdis } = sim.createVm({ name: 'campaign', disks: [{ name: 'root', size: DISK }, { name: 'data', size: 8 * MiB }], running: false })
    const srs = [sim.record('SR', sim.defaultSr()).uuid, sim.secondSr()]
    let sr = 0
    const hashes = new Map<string, string[]>()
    for (let run = 1; run <= RUNS; run++) {
      for (let writes = random.int(0, 6); writes > 0; writes--) {
        const disk = vdis[random.int(0, vdis.length)]!
        const size = Number(sim.record('VDI', disk).virtual_size)
        const length = random.int(1, 3 * MiB)
        await sim.writeGuest(disk, random.int(0, size - length), random.bytes(length))
      }
      const transport = (['auto', 'auto', 'nbd', 'export'] as const)[random.int(0, 4)]!
      const spec: JobSpec = harness.job([vm], { retention: RETENTION, transport, nbdConnections: random.int(1, 5) })
      const event = random.int(0, 10)
      let note = 'none'
      if (event === 0) {
        note = 'CBT disabled'
        await harness.xapi.call('VDI.disable_cbt', sim.record('VDI', vdis[0]!).$ref)
      } else if (event === 1) {
        note = 'disk migrated'
        sr = 1 - sr
        sim.migrateVdi(vdis[1]!, srs[sr]!)
      } else if (event === 2) {
        note = 'list_changed_blocks fails'
        sim.faults.failNextCall('VDI.list_changed_blocks', 'SR_BACKEND_FAILURE_460', ['', 'Failed to calculate changed blocks for given VDIs.', ''])
      } else if (event === 3) {
        note = 'NBD read cut'
        sim.faults.cutNbdReadAfter(random.int(1, 2 * MiB))
      } else if (event === 4) {
        note = 'no NBD purpose'
        sim.setNetworkPurpose([])
      }
      const expected = await Promise.all(vdis.map(disk => sim.hashVdi(disk)))
      const result = (await runJob(spec, harness.env(new RecordingReporter()))).vms[0]!
      sim.faults.reset()
      sim.setNetworkPurpose(['nbd'])
      assert.equal(result.status, 'success', `run ${run} (${transport}, ${note}): ${result.error}`)
      hashes.set(result.restorePoint!, expected)
      const points = await restorePointsOf(harness.handler, vm, spec.id)
      const newest = points.at(-1)!
      for (const [index, disk] of vdis.entries()) {
        assert.equal(await hashRestoredDisk(harness.handler, newest, disk), expected[index], `run ${run} (${transport}, ${note}): disk ${index}`)
      }
    }
    const points = await restorePointsOf(harness.handler, vm, 'job-1')
    assert.equal(points.length, RETENTION)
    for (const point of points) {
      const expected = hashes.get(point.id)
      assert.ok(expected !== undefined, `restore point ${point.id} was written by this campaign`)
      for (const [index, disk] of vdis.entries()) assert.equal(await hashRestoredDisk(harness.handler, point, disk), expected[index])
    }
    assert.deepEqual(await remoteProblems(harness.handler, vm), [])
  })
})
