/**
 * The backup lifecycle end to end: the real xen-api client against the simulated pool, a real
 * `file://` remote, `runJob` called directly.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { JobRunResult, VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import { MIGRATION_OPERATIONS } from '../../src/xapi/snapshot.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, RecordingReporter, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { onProfiles } from '../helpers/profiles.js'

const XO_FULL_EXAMPLE = fileURLToPath(new URL('../../../test/fixtures/xo-full-metadata.example.json', import.meta.url))

function onlyVm(result: JobRunResult): VmRunResult {
  assert.equal(result.vms.length, 1)
  return result.vms[0]!
}

/** writes `count` distinct 2 MiB blocks of random data in the guest disk, at block-aligned offsets */
async function writeBlocks(harness: Harness, vdi: string, blocks: readonly number[]): Promise<void> {
  for (const block of blocks) {
    await harness.pool.sim.writeGuest(vdi, block * BLOCK + 4096, randomBytes(64 * 1024))
  }
}

/**
 * vm1 runs: on a pool without `ignore_vdis` its [NOBAK] disk is snapshotted with it and the run
 * warns of that cost (lifecycle-real-pools.test.ts checks that warning)
 */
const notNobakCost = (warning: string): boolean => !/cannot leave disks out of the snapshot of a running VM/.test(warning)

/** the job's snapshots of a VM on the SR */
function jobSnapshots(harness: Harness, vmUuid: string) {
  return harness.pool.sim.all('VM').filter(vm => vm.is_a_snapshot === true && (vm.other_config as Record<string, string>)[BACKUP_KEYS.vm] === vmUuid)
}

onProfiles(({ profile, fullOnly }) => {
  describe(`lifecycle: continuous delta backups of a VM [${profile}]`, function () {
    let harness: Harness
    let vm1: string
    let system: string
    let scratch: string

    before(async function () {
      harness = await startHarness({ profile })
      const vm = harness.pool.sim.findVm('vm1')
      vm1 = vm.uuid
      const [systemVdi, scratchVdi] = harness.pool.sim.vdisOf(vm1)
      system = systemVdi!.uuid
      scratch = scratchVdi!.uuid
      assert.equal(scratchVdi!.name_label, '[NOBAK] scratch')
    })

    after(async function () {
      await harness?.close()
    })

    const hashes = new Map<string, string>()

    it('first run: a full of every disk but [NOBAK], tagged snapshot, XO metadata', async function () {
      const reporter = new RecordingReporter()
      const result = await runJob(harness.job([vm1]), harness.env(reporter))
      assert.equal(result.status, 'success', JSON.stringify(result))
      const vm = onlyVm(result)
      assert.deepEqual(
        vm.disks.map(disk => [disk.vdi, disk.mode]),
        [[system, 'full']]
      )
      assert.deepEqual(vm.excluded.map(disk => [disk.vdi, disk.name]), [[scratch, '[NOBAK] scratch']])
      assert.match(vm.disks[0]!.checksum ?? '', /^[0-9a-f]{64}$/)
      assert.ok(vm.restorePoint !== undefined)
      hashes.set(vm.restorePoint, await harness.pool.sim.hashVdi(system))
      // a first export is expected: no warning
      assert.deepEqual(vm.warnings.filter(notNobakCost), [])

      // nothing of the [NOBAK] disk on the remote
      const files = await listTree(harness.handler)
      assert.ok(files.length > 0)
      assert.ok(files.every(file => !file.includes(scratch)), files.join('\n'))

      // XO's metadata fields
      const metadata = await readMetadata(harness.handler, vm.restorePoint)
      const xoExample = JSON.parse(await readFile(XO_FULL_EXAMPLE, 'utf8')) as Record<string, unknown>
      for (const field of Object.keys(xoExample)) {
        assert.ok(field in metadata, `metadata lacks XO's field ${field}`)
      }
      assert.equal(metadata.jobId, 'job-1')
      assert.equal(metadata.scheduleId, 'schedule-1')
      assert.equal(metadata.vm.uuid, vm1)
      assert.deepEqual(Object.values(metadata.isVhdDifferencing), [false])
      const [vdi] = Object.values(metadata.vdis)
      assert.equal(vdi!.$snapshot_of$uuid, system)
      assert.equal(vdi!.$SR$uuid, harness.pool.sim.defaultSr())
      for (const vif of Object.values(metadata.vifs)) {
        assert.equal(vif.$network$uuid, harness.pool.sim.defaultNetwork())
      }
      assert.deepEqual(metadata.continuousDelta?.excluded.map(disk => disk.vdi), [scratch])

      // one reference snapshot, tagged, exported; migration allowed again on the VM
      const snapshots = jobSnapshots(harness, vm1)
      assert.equal(snapshots.length, 1)
      const tags = snapshots[0]!.other_config as Record<string, string>
      assert.equal(tags[BACKUP_KEYS.job], 'job-1')
      assert.equal(tags[BACKUP_KEYS.schedule], 'schedule-1')
      assert.equal(tags[BACKUP_KEYS.exported], 'true')
      assert.match(tags[BACKUP_KEYS.datetime] ?? '', /^\d{8}T\d\d:\d\d:\d\dZ$/)
      const blocked = harness.pool.sim.record('VM', vm1).blocked_operations as Record<string, string>
      for (const operation of MIGRATION_OPERATIONS) {
        assert.equal(blocked[operation], undefined)
      }
      // the snapshot holds no copy of the [NOBAK] disk
      const snapshotDisks = harness.pool.sim.all('VDI').filter(record => record.is_a_snapshot === true)
      assert.ok(snapshotDisks.every(record => harness.pool.sim.record('VDI', String(record.snapshot_of)).uuid !== scratch))
    })

    it('10 later runs: each a delta of the changed blocks only, never a second full', async function () {
      for (let run = 0; run < 10; run++) {
        await writeBlocks(harness, system, [run % 30, (run + 7) % 30, (run + 15) % 30])
        const result = await runJob(harness.job([vm1]), harness.env())
        const vm = onlyVm(result)
        assert.equal(vm.status, 'success', vm.error)
        assert.deepEqual(vm.disks.map(disk => disk.mode), ['delta'], `run ${run}: ${vm.warnings.join('; ')}`)
        const size = vm.disks[0]!.size
        assert.ok(size >= 3 * BLOCK && size < 3 * BLOCK + MiB, `run ${run}: ${size} bytes for 3 changed blocks`)
        assert.deepEqual(vm.warnings.filter(notNobakCost), [])
        hashes.set(vm.restorePoint!, await harness.pool.sim.hashVdi(system))
        assert.equal(jobSnapshots(harness, vm1).length, 1)
      }
    })

    it('every restore point reads back as the guest disk at its time', async function () {
      const points = await restorePointsOf(harness.handler, vm1, 'job-1')
      assert.equal(points.length, 11)
      assert.deepEqual(
        points.map(point => point.disks.map(disk => disk.differencing)),
        [[false], ...Array.from({ length: 10 }, () => [true])]
      )
      for (const point of points) {
        assert.equal(await hashRestoredDisk(harness.handler, point, system), hashes.get(point.id), point.id)
      }
      assert.deepEqual(await remoteProblems(harness.handler), [])
    })

    fullOnly('renaming a disk takes effect at the next run', async function () {
      harness.pool.sim.renameVdi(scratch, 'scratch')
      harness.pool.sim.renameVdi(system, '[NOBAK]system')
      const vm = onlyVm(await runJob(harness.job([vm1]), harness.env()))
      assert.equal(vm.status, 'success', vm.error)
      assert.deepEqual(vm.disks.map(disk => [disk.vdi, disk.mode]), [[scratch, 'full']])
      assert.deepEqual(vm.excluded.map(disk => [disk.vdi, disk.reason]), [[system, 'its name starts with [NOBAK]']])
      const point = (await restorePointsOf(harness.handler, vm1, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, scratch), await harness.pool.sim.hashVdi(scratch))

      harness.pool.sim.renameVdi(system, 'system')
      harness.pool.sim.renameVdi(scratch, '[NOBAK] scratch')
      const back = onlyVm(await runJob(harness.job([vm1]), harness.env()))
      assert.equal(back.status, 'success', back.error)
      // the reference snapshot of the last run holds no copy of `system`: a full, and the log says why
      assert.deepEqual(back.disks.map(disk => [disk.vdi, disk.mode]), [[system, 'full']])
      assert.equal(back.warnings.filter(notNobakCost).length, 1)
      assert.match(back.warnings.filter(notNobakCost)[0]!, /holds no snapshot of this disk/)
    })

    fullOnly('a deleted reference snapshot makes the next run a full, with a warning, nothing else lost', async function () {
      const before = await restorePointsOf(harness.handler, vm1, 'job-1')
      const [snapshot] = jobSnapshots(harness, vm1)
      await harness.xapi.callAsync('VM.destroy', snapshot!.$ref)

      await writeBlocks(harness, system, [3])
      const reporter = new RecordingReporter()
      const vm = onlyVm(await runJob(harness.job([vm1]), harness.env(reporter)))
      assert.equal(vm.status, 'success', vm.error)
      assert.deepEqual(vm.disks.map(disk => disk.mode), ['full'])
      assert.match(vm.warnings.join('\n'), /no reference snapshot of job job-1/)
      assert.deepEqual(reporter.warnings(), vm.warnings)
      hashes.set(vm.restorePoint!, await harness.pool.sim.hashVdi(system))

      const after = await restorePointsOf(harness.handler, vm1, 'job-1')
      assert.deepEqual(after.slice(0, before.length).map(point => point.id), before.map(point => point.id))
      for (const point of after.filter(point => hashes.has(point.id))) {
        assert.equal(await hashRestoredDisk(harness.handler, point, system), hashes.get(point.id), point.id)
      }
    })

    fullOnly('a reference snapshot not marked exported is no base: a full, with a warning', async function () {
      const [snapshot] = jobSnapshots(harness, vm1)
      await harness.xapi.call('VM.remove_from_other_config', snapshot!.$ref, BACKUP_KEYS.exported)
      await writeBlocks(harness, system, [8])
      const vm = onlyVm(await runJob(harness.job([vm1]), harness.env()))
      assert.equal(vm.status, 'success', vm.error)
      assert.deepEqual(vm.disks.map(disk => disk.mode), ['full'])
      assert.match(vm.warnings.join('\n'), new RegExp(`reference snapshot ${snapshot!.uuid} was never marked exported`))
      hashes.set(vm.restorePoint!, await harness.pool.sim.hashVdi(system))
      assert.equal(jobSnapshots(harness, vm1).length, 1)
    })

    fullOnly('a deleted newest VHD makes the next run a full, with a warning, then deltas again', async function () {
      const last = (await restorePointsOf(harness.handler, vm1, 'job-1')).at(-1)!
      const vhd = last.disks.find(disk => disk.vdi === system)!.vhd
      await harness.handler.unlink(vhd)

      await writeBlocks(harness, system, [4])
      const vm = onlyVm(await runJob(harness.job([vm1]), harness.env()))
      assert.equal(vm.status, 'success', vm.error)
      assert.deepEqual(vm.disks.map(disk => disk.mode), ['full'])
      assert.match(vm.warnings.join('\n'), /newest VHD on the remote|no readable VHD/)
      hashes.set(vm.restorePoint!, await harness.pool.sim.hashVdi(system))

      await writeBlocks(harness, system, [5, 6, 7])
      const next = onlyVm(await runJob(harness.job([vm1]), harness.env()))
      assert.deepEqual(next.disks.map(disk => disk.mode), ['delta'])
      const point = (await restorePointsOf(harness.handler, vm1, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, system), await harness.pool.sim.hashVdi(system))
      // the only damage on the remote is the VHD this test deleted
      assert.deepEqual(await remoteProblems(harness.handler), [`error missing-vhd ${vhd}`])
    })
  })
})

describe('lifecycle: jobs of several VMs', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness()
  })

  after(async function () {
    await harness?.close()
  })

  it('backs up VMs concurrently; one failing VM does not stop the others (partial)', async function () {
    const vm1 = harness.pool.sim.findVm('vm1').uuid
    const vm2 = harness.pool.sim.findVm('vm2').uuid
    const missing = '0b0b0b0b-0000-4000-8000-000000000000'
    const result = await runJob(harness.job([vm1, missing, vm2], { concurrency: 2 }), harness.env())
    assert.equal(result.status, 'partial')
    assert.deepEqual(
      result.vms.map(vm => [vm.vm, vm.status]),
      [
        [vm1, 'success'],
        [missing, 'failure'],
        [vm2, 'success'],
      ]
    )
    assert.match(result.vms[1]!.error ?? '', new RegExp(missing))
    const [data] = harness.pool.sim.vdisOf(vm2)
    const point = (await restorePointsOf(harness.handler, vm2, 'job-1')).at(-1)!
    assert.equal(await hashRestoredDisk(harness.handler, point, data!.uuid), await harness.pool.sim.hashVdi(data!.uuid))
  })
})
