/**
 * Continuous merge through the lifecycle: with retention 5 over 12 runs, a VM keeps at most 5
 * restore points, one full, each reading back as the guest disk at its time; for VHD files and
 * VHD directories alike (and, shorter, on S3), on the oldest supported pool profile; a short case
 * on the other suite profile (XCP-ng 8.3).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { runJob } from '../../src/lifecycle/run-job.js'
import { BLOCK, hashRestoredDisk, MiB, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { SUITE_PROFILES } from '../helpers/profiles.js'
import type { ProfileName } from '../simulator/profiles.js'

const [OLDEST, OTHER] = SUITE_PROFILES as [ProfileName, ProfileName]

const CASES: readonly { remote: 'file' | 'file-vhd-directory' | 's3'; runs: number; keep: number; profile: ProfileName }[] = [
  { remote: 'file', runs: 12, keep: 5, profile: OLDEST },
  { remote: 'file-vhd-directory', runs: 12, keep: 5, profile: OLDEST },
  { remote: 's3', runs: 4, keep: 2, profile: OLDEST },
  { remote: 'file-vhd-directory', runs: 4, keep: 2, profile: OTHER },
]

for (const { remote, runs, keep, profile } of CASES) {
  describe(`lifecycle: retention ${keep} over ${runs} runs [${remote}, ${profile}]`, function () {
    let harness: Harness

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote, profile })
    })

    after(async function () {
      await harness?.close()
    })

    it(`keeps at most ${keep} restore points, one full, each restoring to its time`, async function () {
      const { sim } = harness.pool
      const { vm, vdis } = sim.createVm({ name: 'mail', disks: [{ name: 'root', size: 16 * MiB }] })
      const disk = vdis[0]!
      const hashes = new Map<string, string>()
      const merged: number[] = []

      for (let run = 0; run < runs; run++) {
        await sim.writeGuest(disk, (run % 8) * BLOCK + 1024, randomBytes(32 * 1024))
        const result = await runJob(harness.job([vm], { retention: keep }), harness.env())
        const vmResult = result.vms[0]!
        assert.equal(vmResult.status, 'success', vmResult.error)
        assert.deepEqual(vmResult.disks.map(d => d.mode), [run === 0 ? 'full' : 'delta'], `run ${run}: ${vmResult.warnings.join('; ')}`)
        hashes.set(vmResult.restorePoint!, await sim.hashVdi(disk))
        merged.push((vmResult.merges ?? []).reduce((blocks, merge) => blocks + merge.blocks, 0))

        const points = await restorePointsOf(harness.handler, vm, 'job-1')
        assert.ok(points.length <= keep, `run ${run}: ${points.length} restore points`)
        assert.deepEqual(
          points.map(point => point.disks[0]!.differencing),
          points.map((_, index) => index !== 0),
          `run ${run}: only the oldest restore point is a full`
        )
      }
      // merges happened once the retention was reached, and were reported
      assert.ok(merged.slice(0, keep).every(blocks => blocks === 0), merged.join(','))
      assert.ok(merged.slice(keep).every(blocks => blocks > 0), merged.join(','))

      const points = await restorePointsOf(harness.handler, vm, 'job-1')
      assert.equal(points.length, keep)
      for (const point of points) {
        assert.equal(await hashRestoredDisk(harness.handler, point, disk), hashes.get(point.id), point.id)
      }
      // VHD files on a plain folder, VHD directories where asked and on S3
      for (const point of points) {
        assert.equal(point.disks[0]!.vhd.endsWith('.alias.vhd'), remote !== 'file', point.disks[0]!.vhd)
      }
      // verify finds no VHD that no restore point refers to, nor any other problem
      assert.deepEqual(await remoteProblems(harness.handler), [])
    })
  })
}
