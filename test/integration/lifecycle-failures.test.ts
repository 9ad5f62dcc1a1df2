/**
 * What a failed or cancelled run leaves behind: the previous reference snapshot and every earlier
 * restore point untouched, nothing half-written, and the next run a delta again.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { BackupError } from '../../src/errors.js'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { createBackupLifecycle } from '../../src/lifecycle/run-vm.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import { MIGRATION_OPERATIONS } from '../../src/xapi/snapshot.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { cutNextTransfer, onProfiles } from '../helpers/profiles.js'

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

onProfiles(({ profile, fullOnly }) => {
  describe(`lifecycle: failed and cancelled runs [${profile}]`, function () {
    let harness: Harness
    let vm: string
    let disk: string

    /** the state a failed run must leave as it found it */
    async function state() {
      const { sim } = harness.pool
      const snapshots = sim
        .all('VM')
        .filter(record => record.is_a_snapshot === true && (record.other_config as Record<string, string>)[BACKUP_KEYS.vm] === vm)
        .map(record => record.uuid)
      const snapshotDisks = sim.all('VDI').filter(record => record.is_a_snapshot === true).map(record => record.uuid)
      const points = (await restorePointsOf(harness.handler, vm, 'job-1')).map(point => point.id)
      return { snapshots, snapshotDisks: snapshotDisks.sort(), points, files: await listTree(harness.handler) }
    }

    before(async function () {
      harness = await startHarness({ profile, inventory: 'empty' })
      const created = harness.pool.sim.createVm({ name: 'app', disks: [{ name: 'root', size: 32 * MiB }] })
      vm = created.vm
      disk = created.vdis[0]!
      await harness.pool.sim.writeGuest(disk, 0, randomBytes(64 * 1024))
      const first = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(first.status, 'success', first.error)
    })

    after(async function () {
      await harness?.close()
    })

    it('an export cut short fails the run and changes nothing; the next run is a delta', async function () {
      const before = await state()
      await harness.pool.sim.writeGuest(disk, 2 * BLOCK, randomBytes(BLOCK))
      await harness.pool.sim.writeGuest(disk, 6 * BLOCK, randomBytes(BLOCK))
      cutNextTransfer(harness.pool.sim, BLOCK + 4096)

      const result = await runJob(harness.job([vm]), harness.env())
      harness.pool.sim.faults.reset()
      assert.equal(result.status, 'failure')
      const failed = single(result.vms)
      assert.match(failed.error ?? '', /^transfer: /)
      assert.deepEqual(await state(), before)
      const blocked = harness.pool.sim.record('VM', vm).blocked_operations as Record<string, string>
      for (const operation of MIGRATION_OPERATIONS) {
        assert.equal(blocked[operation], undefined, `${operation} still blocked`)
      }

      const next = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(next.status, 'success', next.error)
      assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
      const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, disk), await harness.pool.sim.hashVdi(disk))
    })

    fullOnly('a run cancelled during its transfer leaves nothing half-written', async function () {
      const before = await state()
      await harness.pool.sim.writeGuest(disk, 4 * BLOCK, randomBytes(BLOCK))
      harness.pool.sim.faults.stallExport(2000)
      const controller = new AbortController()
      const running = runJob(harness.job([vm]), harness.env(undefined, { signal: controller.signal }))
      setTimeout(() => controller.abort(), 300)
      const result = await running
      assert.equal(result.status, 'failure')
      assert.match(single(result.vms).error ?? '', /cancel|abort/i)
      assert.deepEqual(await state(), before)

      const next = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
    })

    fullOnly('an export that sends nothing for longer than the transfer timeout fails the run; the next run is a delta', async function () {
      const before = await state()
      await harness.pool.sim.writeGuest(disk, 3 * BLOCK, randomBytes(BLOCK))
      // stalled far longer than the test may take: only the timeout ends it
      harness.pool.sim.faults.stallExport(120_000)
      const errors: BackupError[] = []
      const lifecycle = createBackupLifecycle().onError((_ctx, error) => void errors.push(error))
      const start = Date.now()
      const result = await runJob(harness.job([vm]), { ...harness.env(), settings: { transferTimeoutMs: 400 } }, { lifecycle })
      const elapsed = Date.now() - start
      assert.ok(elapsed < 10_000, `the run took ${elapsed} ms`)
      const failed = single(result.vms)
      assert.equal(failed.status, 'failure')
      assert.match(failed.error ?? '', /^transfer: /)
      assert.match(failed.error ?? '', new RegExp(`disk "root" of VM ${vm} received no data for 0\\.4 s`))
      assert.equal(errors.length, 1)
      assert.equal(errors[0]!.code, 'TRANSFER_FAILED')
      assert.equal(errors[0]!.context.timeoutMs, 400)
      assert.equal(errors[0]!.context.vm, vm)
      assert.deepEqual(await state(), before)

      const next = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(next.status, 'success', next.error)
      assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
      const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, disk), await harness.pool.sim.hashVdi(disk))
    })

    fullOnly('what a killed run left (a VHD no metadata refers to) is removed before the next run chooses its base', async function () {
      // the reference is now newer than the first full: a copy of the full is no valid base
      await harness.pool.sim.writeGuest(disk, 7 * BLOCK, randomBytes(4096))
      assert.equal(single((await runJob(harness.job([vm]), harness.env())).vms).status, 'success')
      const points = await restorePointsOf(harness.handler, vm, 'job-1')
      const full = points[0]!.disks[0]!.vhd
      // a killed run's VHD, named after every restore point, that no metadata refers to
      const leftover = full.replace(/\d{8}T\d{6}Z\.vhd$/, '29991231T235959Z.vhd')
      await harness.handler.writeFile(leftover, await harness.handler.readFile(full))

      await harness.pool.sim.writeGuest(disk, 5 * BLOCK, randomBytes(4096))
      const next = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(next.status, 'success', next.error)
      assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
      assert.deepEqual(next.warnings, [])
      assert.ok(!(await listTree(harness.handler)).includes(leftover))
      const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, disk), await harness.pool.sim.hashVdi(disk))
      assert.deepEqual(await remoteProblems(harness.handler), [])
    })

    it('a failure after the snapshot (XAPI refuses to tag it) destroys the new snapshot only', async function () {
      const before = await state()
      harness.pool.sim.faults.failNextCall('VDI.add_to_other_config', 'INTERNAL_ERROR', ['simulated'])
      const result = await runJob(harness.job([vm]), harness.env())
      const failed = single(result.vms)
      assert.equal(failed.status, 'failure')
      assert.match(failed.error ?? '', /^snapshot: /)
      assert.deepEqual(await state(), before)
      assert.deepEqual(await remoteProblems(harness.handler), [])
    })
  })
})
