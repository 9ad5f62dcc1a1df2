/**
 * Damage is never merged (issue 10, findings 2 and 3). Four bytes flipped in a delta within
 * retention, then runs past retention: the merge that would fold the damaged block in is refused
 * (the run warns, naming the restore points that read it), `verify` still names the damage, the
 * damaged restore point fails with DATA_DAMAGED, every other restore point restores byte-exact, the
 * next run takes a full of that disk, and the restore points built after it restore byte-exact.
 * A later merge that no longer reads the damaged block (a newer delta overrides it) goes through:
 * the damage is dropped, never spread. A restore point holding recorded damage is not counted toward
 * retention, is named in each run's warning and stays with its VHDs until it is deleted on request.
 * On VHD files and VHD directories.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { deleteRestorePoint } from '../../src/repository/delete.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { listRestorePointsWithStatus } from '../../src/repository/restore-points.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { BLOCK, hashRestoredDisk, MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { flipFourBytesInFirstBlock } from '../repository/damage.js'

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`lifecycle: damaged data is never merged [${remote}]`, function () {
    this.timeout(300_000)
    let harness: Harness

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
    })

    after(async function () {
      await harness?.close()
    })

    /** restore point id → the disk's sha256 when it was taken */
    const expected = new Map<string, string>()

    async function run(vm: string, disk: string, retention: number, write: readonly [number, number]): Promise<VmRunResult> {
      await harness.pool.sim.writeGuest(disk, write[0], randomBytes(write[1]))
      const result = (await runJob(harness.job([vm], { retention }), harness.env())).vms[0]!
      assert.equal(result.status, 'success', result.error)
      const newest = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
      expected.set(newest.id, await harness.pool.sim.hashVdi(disk))
      return result
    }

    async function points(vm: string) {
      return restorePointsOf(harness.handler, vm, 'job-1')
    }

    async function assertRestores(vm: string, disk: string, ids: readonly string[]): Promise<void> {
      for (const point of (await points(vm)).filter(p => ids.includes(p.id))) {
        assert.equal(await hashRestoredDisk(harness.handler, point, disk), expected.get(point.id), `restore point ${point.id}`)
      }
    }

    async function assertDamaged(vm: string, id: string, vhd: string): Promise<void> {
      const point = (await points(vm)).find(p => p.id === id)!
      await assert.rejects(
        openChainRawStream(harness.handler, point.disks[0]!.vhd, { restorePoint: id }).then(async ({ stream }) => {
          for await (const chunk of stream) void chunk
        }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'DATA_DAMAGED', error.message)
          assert.ok(error.message.includes(vhd), error.message)
          return true
        },
      )
    }

    it('a damaged middle delta within retention (finding 2): not merged, recorded, restored by no one as success; the next run is a full', async function () {
      const { vm, vdis } = harness.pool.sim.createVm({ name: 'middle', disks: [{ name: 'root', size: 16 * MiB }] })
      const disk = vdis[0]!
      await run(vm, disk, 3, [0, 2 * BLOCK]) // P0: full
      await run(vm, disk, 3, [2 * BLOCK, 2 * BLOCK]) // P1: blocks 2 and 3; block 2 is damaged below
      await run(vm, disk, 3, [2 * BLOCK, 4096]) // P2: block 2 again (overrides the damage)
      const [p0, p1, p2] = await points(vm)
      await flipFourBytesInFirstBlock(harness.remote.path!, harness.handler, p1!.disks[0]!.vhd)
      const damagedVhd = p1!.disks[0]!.vhd

      // P3, past retention: the merge of P1 into the full would copy the damaged block: refused
      const refused = await run(vm, disk, 3, [4 * BLOCK, 4096])
      assert.deepEqual(refused.disks.map(d => d.mode), ['delta'])
      const warning = refused.warnings.find(w => w.includes('damaged data, not merged'))
      assert.ok(warning !== undefined, refused.warnings.join('; '))
      assert.ok(warning.includes(`block 2 of ${damagedVhd}`), warning)
      assert.ok(warning.includes(p1!.id), warning)
      assert.ok(!warning.includes(p2!.id), warning)
      assert.equal(refused.merges?.length ?? 0, 0)
      const listed = (await points(vm)).map(p => p.id)
      assert.deepEqual(listed, [p1!.id, p2!.id, (await points(vm)).at(-1)!.id])
      assert.ok(!listed.includes(p0!.id))
      // recorded in the restore point that reads it
      assert.deepEqual((await readMetadata(harness.handler, p1!.id)).continuousDelta?.damaged?.map(d => d.blocks), [[2]])
      // and listed as damaged, with the damage named, while the others are restorable
      const listed2 = await listRestorePointsWithStatus(harness.handler, { vm })
      assert.deepEqual(listed2.map(p => p.status), ['damaged', 'restorable', 'restorable'])
      assert.ok(listed2[0]!.reason?.includes('block 2'), listed2[0]!.reason)

      // verify still names the damage, for that restore point
      const report = await verifyRemote(harness.handler, { vm })
      assert.equal(report.ok, false)
      const damagedPoints = report.restorePoints.filter(p => !p.ok).map(p => p.id)
      assert.ok(damagedPoints.includes(p1!.id), JSON.stringify(report.restorePoints))
      assert.ok(
        report.restorePoints.find(p => p.id === p1!.id)!.problems.some(q => q.code === 'block-checksum-mismatch' && q.path === damagedVhd),
      )
      await assertDamaged(vm, p1!.id, damagedVhd)
      await assertRestores(vm, disk, listed.filter(id => id !== p1!.id))

      // the next run does not build on the damaged chain: a full, with a warning saying why
      const next = await run(vm, disk, 3, [5 * BLOCK, 4096])
      assert.deepEqual(next.disks.map(d => d.mode), ['full'], next.warnings.join('; '))
      assert.ok(next.warnings.some(w => w.includes('damaged') && w.includes(damagedVhd)), next.warnings.join('; '))
      // P1 is not counted: P2, P3 and the new full are the three restorable points retention 3
      // keeps; P1 is named in the run's warning and left as it is, with its VHDs
      assert.ok(next.warnings.some(w => w.includes(p1!.id) && w.includes('not counted toward retention')), next.warnings.join('; '))
      assert.deepEqual((await points(vm)).map(p => p.id).slice(0, 3), [p1!.id, p2!.id, listed[2]])
      const after = await run(vm, disk, 3, [6 * BLOCK, 4096])
      assert.deepEqual(after.disks.map(d => d.mode), ['delta'], after.warnings.join('; '))
      assert.ok(after.warnings.some(w => w.includes(p1!.id) && w.includes('not counted toward retention')), after.warnings.join('; '))
      const withStatus = await listRestorePointsWithStatus(harness.handler, { vm })
      assert.deepEqual(withStatus.map(p => [p.id, p.status]), [[p1!.id, 'damaged'], ...withStatus.slice(1).map(p => [p.id, 'restorable'])])
      assert.equal(withStatus.length, 4)
      await assertRestores(vm, disk, withStatus.slice(1).map(p => p.id))
      await assertDamaged(vm, p1!.id, damagedVhd)
      const stillDamaged = await verifyRemote(harness.handler, { vm })
      assert.deepEqual(stillDamaged.restorePoints.filter(p => p.problems.some(q => q.severity === 'error')).map(p => p.id), [p1!.id])

      // P1 deleted on request: the merge past it reads P2's block 2, not the damaged one
      await deleteRestorePoint(harness.handler, p1!.id)
      const kept = (await points(vm)).map(p => p.id)
      assert.ok(!kept.includes(p1!.id))
      await assertRestores(vm, disk, kept)
      const clean = await verifyRemote(harness.handler, { vm })
      assert.deepEqual(clean.restorePoints.flatMap(p => p.problems.filter(q => q.severity === 'error')), [])
    })

    it('a damaged newest delta with retention 2 (finding 3): the run takes a full and does not merge the damaged point', async function () {
      const { vm, vdis } = harness.pool.sim.createVm({ name: 'newest', disks: [{ name: 'root', size: 16 * MiB }] })
      const disk = vdis[0]!
      await run(vm, disk, 2, [0, 2 * BLOCK]) // P0: full
      await run(vm, disk, 2, [2 * BLOCK, 2 * BLOCK]) // P1
      const [, p1] = await points(vm)
      const damagedVhd = p1!.disks[0]!.vhd
      await flipFourBytesInFirstBlock(harness.remote.path!, harness.handler, damagedVhd)

      const next = await run(vm, disk, 2, [5 * BLOCK, 4096])
      assert.deepEqual(next.disks.map(d => d.mode), ['full'], next.warnings.join('; '))
      const warning = next.warnings.find(w => w.includes('damaged data, not merged'))
      assert.ok(warning !== undefined, next.warnings.join('; '))
      assert.ok(warning.includes(p1!.id) && warning.includes(damagedVhd), warning)
      const listed = await points(vm)
      assert.deepEqual(listed.map(p => p.id), [p1!.id, listed.at(-1)!.id])

      const report = await verifyRemote(harness.handler, { vm })
      assert.deepEqual(report.restorePoints.filter(p => !p.ok).map(p => p.id), [p1!.id])
      await assertDamaged(vm, p1!.id, damagedVhd)
      await assertRestores(vm, disk, [listed.at(-1)!.id])

      // later restore points, built on the new full, restore byte-exact; the damaged one is not
      // counted (two restorable ones kept, as retention 2 promises), named, and left with its chain
      await run(vm, disk, 2, [6 * BLOCK, 4096])
      const last = await run(vm, disk, 2, [7 * BLOCK, 4096])
      assert.deepEqual(last.disks.map(d => d.mode), ['delta'])
      assert.ok(last.warnings.some(w => w.includes(p1!.id) && w.includes('not counted toward retention')), last.warnings.join('; '))
      const later = await points(vm)
      assert.deepEqual([later.length, later[0]!.id], [3, p1!.id])
      await assertRestores(vm, disk, later.slice(1).map(p => p.id))
      await assertDamaged(vm, p1!.id, damagedVhd)
      // deleted on request, the damaged chain goes with it
      await deleteRestorePoint(harness.handler, p1!.id)
      await assertRestores(vm, disk, (await points(vm)).map(p => p.id))
      const clean = await verifyRemote(harness.handler, { vm })
      assert.equal(clean.ok, true, JSON.stringify(clean))
    })
  })
}
