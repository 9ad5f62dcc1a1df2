/**
 * The whole cycle on object storage (S3, VHD directories): backups with retention merges, a
 * verification, and a restore of every kept restore point as a new VM, byte-exact.
 */
import assert from 'node:assert/strict'
import type { JobRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { listDiskVhds } from '../../src/repository/chain.js'
import { diskDir } from '../../src/repository/layout.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { restoreVm } from '../../src/restore/restore-vm.js'
import { openRemote } from '../helpers/remotes.js'
import type { TestRemote } from '../helpers/remotes.js'
import { MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { RestorePointLedger } from './ledger.js'
import { SeededRandom } from './random.js'

const RETENTION = 2
const DISK_SIZES = [16 * MiB, 6 * MiB]

describe('reliability: backup, merge, verify and restore on S3', function () {
  // s3rver is slow on a loaded machine: a hang guard, not a time bound
  this.timeout(600_000)
  let harness: Harness
  let s3: TestRemote
  let vm: string
  let disks: string[]
  let ledger: RestorePointLedger
  const random = new SeededRandom(0x53_c7c1e)

  before(async function () {
    harness = await startHarness()
    s3 = await openRemote('s3')
    harness.handler = s3.handler
    const created = harness.pool.sim.createVm({ name: 'on s3', disks: DISK_SIZES.map((size, i) => ({ name: `disk ${i}`, size })) })
    vm = created.vm
    disks = created.vdis
    ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks, jobId: 'job-1', handler: () => s3.handler })
  })

  after(async function () {
    await harness?.close()
    await s3?.close()
  })

  const run = (): Promise<JobRunResult> => runJob(harness.job([vm], { retention: RETENTION }), harness.env())

  it('a full, then deltas merged past retention, as VHD directories', async function () {
    const merged: number[] = []
    for (let i = 0; i < 5; i++) {
      for (let w = 0; w < 4; w++) {
        const disk = random.int(0, disks.length)
        const length = random.int(1, 128) * 4096
        await harness.pool.sim.writeGuest(disks[disk]!, random.int(0, (DISK_SIZES[disk]! - length) / 4096) * 4096, random.bytes(length))
      }
      const attempt = await ledger.succeed(run)
      const result = attempt.result!.vms[0]!
      assert.deepEqual(result.disks.map(disk => disk.mode), i === 0 ? ['full', 'full'] : ['delta', 'delta'])
      merged.push(result.merges?.length ?? 0)
      await ledger.assertRestorable({ keep: RETENTION })
    }
    // past retention, every run merges the oldest delta of each disk into the full
    assert.deepEqual(merged, [0, 0, 2, 2, 2])
    const vhds = (await Promise.all(disks.map(vdi => listDiskVhds(s3.handler, diskDir(vm, 'job-1', vdi))))).flat()
    assert.equal(vhds.length, RETENTION * disks.length)
    assert.ok(vhds.every(file => file.endsWith('.alias.vhd')), vhds.join('\n'))
  })

  it('verify finds every chain intact', async function () {
    const report = await verifyRemote(s3.handler, { vm })
    assert.equal(report.ok, true, JSON.stringify(report.problems.concat(report.restorePoints.flatMap(point => point.problems))))
    assert.equal(report.restorePoints.length, RETENTION)
  })

  it('each kept restore point restores as a new VM, byte-exact', async function () {
    const points = await restorePointsOf(s3.handler, vm, 'job-1')
    assert.equal(points.length, RETENTION)
    for (const point of points) {
      const { vm: restored, missingDisks } = await restoreVm({ handler: s3.handler, restorePoint: point.id, xapi: harness.xapi, sr: harness.pool.sim.defaultSr() })
      assert.deepEqual(missingDisks, [])
      const restoredDisks = harness.pool.sim.vdisOf(restored)
      assert.equal(restoredDisks.length, disks.length)
      const expected = ledger.expected(point.id)
      for (const [index, vdi] of disks.entries()) {
        assert.equal(await harness.pool.sim.hashVdi(restoredDisks[index]!.uuid), expected.get(vdi), `${point.id}, disk ${index}`)
      }
    }
  })
})
