/**
 * The lifecycle against what real pools do, profile by profile: `[NOBAK]` disks never
 * snapshotted where the pool can avoid it (and the cost said where it cannot), disks still in
 * use right after their export, a busy pool, an object another client holds, an export answered
 * with an error page, the orphans and migration blocks a dead run leaves.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import { blockReasonOf, DETACHED_DRIVE_KEY } from '../../src/xapi/snapshot.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, RecordingReporter, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import type { ProfileName } from '../simulator/index.js'

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

/** a VM with a `[NOBAK]` disk between two disks backed up, data written on each */
async function vmWithNobak(harness: Harness, running: boolean): Promise<{ vm: string; root: string; nobak: string; data: string }> {
  const { sim } = harness.pool
  const { vm, vdis } = sim.createVm({
    name: running ? 'running-db' : 'halted-db',
    running,
    disks: [
      { name: 'root', size: 8 * MiB },
      { name: '[NOBAK] scratch', size: 6 * MiB },
      { name: 'data', size: 4 * MiB },
    ],
  })
  for (const vdi of vdis) {
    await sim.writeGuest(vdi, BLOCK, randomBytes(8192))
  }
  const [root, nobak, data] = vdis as [string, string, string]
  return { vm, root, nobak, data }
}

/** the drives of a VM as `userdevice:VDI uuid:bootable:mode`, CD drives left out */
function drives(harness: Harness, vm: string): string[] {
  const { sim } = harness.pool
  return (sim.findVm(vm).VBDs as string[])
    .map(ref => sim.record('VBD', ref))
    .filter(vbd => vbd.type === 'Disk')
    .map(vbd => `${String(vbd.userdevice)}:${sim.record('VDI', String(vbd.VDI)).uuid}:${String(vbd.bootable)}:${String(vbd.mode)}`)
    .sort()
}

/** every snapshot disk tagged for the job: each one must belong to a snapshot VM */
function taggedDisks(harness: Harness, vm: string): { uuid: string; onAVm: boolean }[] {
  const { sim } = harness.pool
  return sim
    .all('VDI')
    .filter(vdi => {
      const tags = vdi.other_config as Record<string, string>
      return vdi.is_a_snapshot === true && tags[BACKUP_KEYS.job] === 'job-1' && tags[BACKUP_KEYS.vm] === vm
    })
    .map(vdi => ({
      uuid: vdi.uuid,
      onAVm: (vdi.VBDs as string[]).some(vbd => {
        const owner = sim.record('VBD', vbd).VM as string
        return sim.all('VM').some(record => record.$ref === owner && record.is_a_snapshot === true)
      }),
    }))
}

function jobSnapshotVms(harness: Harness, vm: string): string[] {
  const source = harness.pool.sim.findVm(vm)
  return (source.snapshots as string[]).filter(ref => (harness.pool.sim.record('VM', ref).other_config as Record<string, string>)[BACKUP_KEYS.job] === 'job-1')
}

async function assertRestores(harness: Harness, vm: string, disks: readonly string[]): Promise<void> {
  const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
  for (const disk of disks) {
    assert.equal(await hashRestoredDisk(harness.handler, point, disk), await harness.pool.sim.hashVdi(disk), `disk ${disk}`)
  }
}

const NOBAK_PROFILES: readonly ProfileName[] = ['xenserver-6.5', 'citrix-hypervisor-8.2', 'xcp-ng-8.3']

for (const profile of NOBAK_PROFILES) {
  describe(`lifecycle on real pools: [NOBAK] disks (profile ${profile})`, function () {
    let harness: Harness

    before(async function () {
      harness = await startHarness({ profile, inventory: 'empty' })
    })

    after(async function () {
      await harness?.close()
    })

    it('a halted VM: the [NOBAK] disk is never snapshotted, its drive is exactly as before, the others restore', async function () {
      const { sim } = harness.pool
      const { vm, root, nobak, data } = await vmWithNobak(harness, false)
      const before = drives(harness, vm)
      const run = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(run.status, 'success', run.error)
      assert.deepEqual(run.warnings, [])
      assert.deepEqual(run.excluded.map(disk => disk.vdi), [nobak])
      assert.equal(sim.snapshotsTakenOf(nobak), 0, 'the [NOBAK] disk cost the SR a snapshot')
      assert.deepEqual(drives(harness, vm), before)
      assert.equal((sim.record('VDI', nobak).other_config as Record<string, string>)[DETACHED_DRIVE_KEY], undefined)
      assert.deepEqual(sim.findVm(vm).blocked_operations, {})
      await assertRestores(harness, vm, [root, data])
      const files = await listTree(harness.handler)
      assert.ok(files.every(file => !file.includes(nobak)), files.join('\n'))
    })

    it(`a running VM: ${profile === 'xcp-ng-8.3' ? 'left out of the snapshot, no warning' : 'the snapshot of the [NOBAK] disk is destroyed at once and the run says what it cost'}`, async function () {
      const { sim } = harness.pool
      const { vm, root, nobak, data } = await vmWithNobak(harness, true)
      const run = single((await runJob(harness.job([vm]), harness.env())).vms)
      assert.equal(run.status, 'success', run.error)
      if (profile === 'xcp-ng-8.3') {
        assert.equal(sim.snapshotsTakenOf(nobak), 0)
        assert.deepEqual(run.warnings, [])
      } else {
        assert.equal(sim.snapshotsTakenOf(nobak), 1)
        assert.equal(run.warnings.length, 1, run.warnings.join('\n'))
        assert.match(run.warnings[0]!, /cannot leave disks out of the snapshot of a running VM/)
        assert.match(run.warnings[0]!, /"\[NOBAK\] scratch"/)
        assert.match(run.warnings[0]!, /up to 6 MiB more/)
        // nothing of it is left on the SR
        assert.deepEqual(sim.record('VDI', nobak).snapshots, [])
      }
      await assertRestores(harness, vm, [root, data])
    })
  })
}

describe('lifecycle on real pools: a halted VM on XenServer 6.5 whose drives are detached for its snapshot', function () {
  let harness: Harness

  beforeEach(async function () {
    harness = await startHarness({ profile: 'xenserver-6.5', inventory: 'empty' })
  })

  afterEach(async function () {
    await harness?.close()
  })

  it('a failed snapshot still puts the drive back, and the VM can start', async function () {
    const { sim } = harness.pool
    const { vm } = await vmWithNobak(harness, false)
    const before = drives(harness, vm)
    sim.faults.failNextCall('VM.snapshot', 'SR_FULL', ['OpaqueRef:sr'])
    const run = single((await runJob(harness.job([vm]), harness.env())).vms)
    assert.equal(run.status, 'failure')
    assert.match(run.error ?? '', /SR_FULL/)
    assert.deepEqual(drives(harness, vm), before)
    assert.deepEqual(sim.findVm(vm).blocked_operations, {})
    await harness.xapi.call('VM.start', sim.findVm(vm).$ref)
  })

  it('drives a killed run left detached are put back by the next run before it selects the disks', async function () {
    const { sim } = harness.pool
    const { vm, nobak, root, data } = await vmWithNobak(harness, false)
    const before = drives(harness, vm)
    // what a run killed between detaching the drive and putting it back leaves
    const vbd = (sim.findVm(vm).VBDs as string[]).find(ref => sim.record('VDI', String(sim.record('VBD', ref).VDI)).uuid === nobak)!
    const record = sim.record('VBD', vbd)
    const note = { vm, record: { VM: record.VM, VDI: record.VDI, userdevice: record.userdevice, bootable: record.bootable, mode: record.mode, type: record.type, unpluggable: record.unpluggable, empty: false, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {} } }
    const vdiRef = sim.record('VDI', nobak).$ref
    await harness.xapi.call('VDI.add_to_other_config', vdiRef, DETACHED_DRIVE_KEY, JSON.stringify(note))
    await harness.xapi.call('VBD.destroy', vbd)
    await harness.xapi.barrier()

    const reporter = new RecordingReporter()
    const run = single((await runJob(harness.job([vm]), harness.env(reporter))).vms)
    assert.equal(run.status, 'success', run.error)
    assert.deepEqual(drives(harness, vm), before)
    assert.deepEqual(run.excluded.map(disk => disk.vdi), [nobak])
    assert.ok(reporter.warnings().some(warning => /put back/.test(warning)), reporter.warnings().join('\n'))
    await assertRestores(harness, vm, [root, data])
  })
})

describe('lifecycle on real pools: transient XAPI errors (XenServer 6.5)', function () {
  let harness: Harness

  beforeEach(async function () {
    harness = await startHarness({ profile: 'xenserver-6.5' })
  })

  afterEach(async function () {
    await harness?.close()
  })

  it('disks in use for a while after their export: the previous reference is destroyed after retries, the committed run succeeds, no disk leaks', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const [data] = sim.vdisOf(vm2)
    assert.equal(single((await runJob(harness.job([vm2]), harness.env())).vms).status, 'success')
    const firstReference = jobSnapshotVms(harness, vm2)
    await sim.writeGuest(data!.uuid, 3 * BLOCK, randomBytes(4096))
    sim.clearCalls()
    const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
    assert.equal(run.status, 'success', run.error)
    assert.deepEqual(run.warnings, [])
    assert.deepEqual(run.disks.map(disk => disk.mode), ['delta'])
    // the old reference's disk (the base of the delta) answered VDI_IN_USE, was disconnected from the control domain, then went
    const destroys = sim.calls.filter(call => call.method === 'Async.VDI.destroy' || call.method === 'VBD.destroy')
    assert.ok(destroys.some(call => call.method === 'VBD.destroy'), 'a control-domain VBD destroyed before a retry')
    assert.ok(harness.retryDelays.length >= 1)
    const after = jobSnapshotVms(harness, vm2)
    assert.equal(after.length, 1)
    assert.ok(!after.includes(firstReference[0]!))
    assert.deepEqual(taggedDisks(harness, vm2).map(disk => disk.onAVm), [true])
    await assertRestores(harness, vm2, [data!.uuid])
  })

  it('a job does not hold its next VM while the pool releases the previous reference of the last one: the destroy goes on meanwhile, the job ends once it is done', async function () {
    const { sim } = harness.pool
    const vm1 = sim.findVm('vm1')
    const vm2 = sim.findVm('vm2').uuid
    const job = harness.job([vm2, vm1.uuid])
    assert.deepEqual((await runJob(job, harness.env())).vms.map(vm => vm.status), ['success', 'success'])
    const [data] = sim.vdisOf(vm2)
    await sim.writeGuest(data!.uuid, 3 * BLOCK, randomBytes(4096))
    const vm1Snapshotted = () => sim.calls.some(call => call.method === 'Async.VM.snapshot' && call.params[0] === vm1.$ref)
    sim.clearCalls()
    // every retry wait of the run lasts until vm1 is snapshotted. The first is the wait of vm2's
    // destroy (the pool holds its old base after the export): a job that finished that destroy
    // before starting vm1 would never get there, and only the guard would end the wait
    let firstWait: 'vm1 snapshotted' | 'guard' | undefined
    let waits = 0
    const env = harness.env()
    const release = (first: boolean): Promise<void> =>
      new Promise(resolve => {
        let ended = false
        const guard = setTimeout(() => {
          ended = true
          if (first) firstWait = 'guard'
          resolve()
        }, 20_000).unref()
        const poll = (): void => {
          if (ended) return
          if (vm1Snapshotted()) {
            if (first) firstWait = 'vm1 snapshotted'
            clearTimeout(guard)
            resolve()
          } else setImmediate(poll)
        }
        poll()
      })
    const run = await runJob(job, { ...env, xapiRetry: { sleep: async () => release(waits++ === 0) } })
    assert.deepEqual(run.vms.map(vm => vm.status), ['success', 'success'], JSON.stringify(run.vms.map(vm => vm.error)))
    assert.deepEqual(run.vms.flatMap(vm => vm.warnings).filter(warning => /not destroyed|housekeeping/.test(warning)), [])
    assert.equal(firstWait, 'vm1 snapshotted', 'vm1 is snapshotted while the destroy of vm2\'s previous reference waits for the pool')
    // and when the job ended, each VM has exactly its new reference
    assert.equal(jobSnapshotVms(harness, vm2).length, 1)
    assert.equal(jobSnapshotVms(harness, vm1.uuid).length, 1)
    assert.deepEqual(taggedDisks(harness, vm2).map(disk => disk.onAVm), [true])
    await assertRestores(harness, vm2, [data!.uuid])
  })

  it('a disk still in use past every retry: the run stays a success with a warning, the old reference keeps its disk, the next run destroys it', async function () {
    await harness.close()
    harness = await startHarness({ profile: 'xenserver-6.5', quirks: { vdiInUseAfterExport: 12 } })
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const [data] = sim.vdisOf(vm2)
    assert.equal(single((await runJob(harness.job([vm2]), harness.env())).vms).status, 'success')
    for (const round of [1, 2]) {
      await sim.writeGuest(data!.uuid, round * BLOCK, randomBytes(4096))
      const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
      assert.equal(run.status, 'success', run.error)
      assert.ok(run.restorePoint !== undefined)
      assert.equal(run.warnings.length, 1, run.warnings.join('\n'))
      assert.match(run.warnings[0]!, /not destroyed yet, the next run will/)
      // never a disk without its snapshot VM: what is left is found again by the next run
      assert.ok(taggedDisks(harness, vm2).every(disk => disk.onAVm), JSON.stringify(taggedDisks(harness, vm2)))
      assert.equal(jobSnapshotVms(harness, vm2).length, 2)
    }
    await assertRestores(harness, vm2, [data!.uuid])
    assert.deepEqual(await remoteProblems(harness.handler), [])
  })

  it('a pool with too many pending tasks: the run waits with backoff and succeeds', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const [data] = sim.vdisOf(vm2)
    const release = sim.occupyPendingTasks()
    let waits = 0
    harness.onRetryDelay = () => {
      if (++waits === 3) release()
    }
    const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
    harness.onRetryDelay = undefined
    release()
    assert.equal(run.status, 'success', run.error)
    assert.ok(harness.retryDelays.length >= 3)
    const [first, second, third] = harness.retryDelays
    assert.ok(first! < second! && second! < third!, `backoff: ${harness.retryDelays.join(', ')}`)
    assert.ok(sim.calls.some(call => call.error === 'TOO_MANY_PENDING_TASKS'))
    await assertRestores(harness, vm2, [data!.uuid])
  })

  it('a pool that stays busy: the run fails after a bounded number of attempts, saying why, leaving nothing', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const vdisBefore = sim.all('VDI').length
    const release = sim.occupyPendingTasks()
    try {
      const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
      assert.equal(run.status, 'failure')
      assert.match(run.error ?? '', /TOO_MANY_PENDING_TASKS/)
      assert.equal(harness.retryDelays.length % 9, 0, `${harness.retryDelays.length} retries`)
    } finally {
      release()
    }
    assert.equal(sim.all('VDI').length, vdisBefore)
  })

  it('a VM another client is snapshotting: OTHER_OPERATION_IN_PROGRESS, retried until it is done', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const [data] = sim.vdisOf(vm2)
    const release = sim.holdOperation('VM', vm2, 'snapshot')
    harness.onRetryDelay = () => release()
    const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
    harness.onRetryDelay = undefined
    assert.equal(run.status, 'success', run.error)
    assert.ok(harness.retryDelays.length >= 1)
    await assertRestores(harness, vm2, [data!.uuid])
  })

  it('an export answered HTTP 200 with an HTML error page fails the run clearly and leaves nothing', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const vmsBefore = sim.all('VM').length
    sim.faults.answerExportWithHtmlError()
    const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
    assert.equal(run.status, 'failure')
    assert.match(run.error ?? '', /error page instead of a VHD/)
    assert.match(run.error ?? '', /SR_BACKEND_FAILURE_46/)
    assert.equal(sim.all('VM').length, vmsBefore, 'the snapshot was destroyed')
    assert.deepEqual(await listTree(harness.handler, 'xo-vm-backups').then(files => files.filter(file => file.endsWith('.vhd') || file.endsWith('.json'))), [])
  })

  it('snapshot disks a dead run left without their snapshot VM are found by their tags and destroyed', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    assert.equal(single((await runJob(harness.job([vm2]), harness.env())).vms).status, 'success')
    // a run that died between destroying the snapshot VM and its disks
    const [reference] = jobSnapshotVms(harness, vm2)
    await harness.xapi.callAsync('VM.destroy', reference!)
    assert.deepEqual(taggedDisks(harness, vm2).map(disk => disk.onAVm), [false])
    const run = single((await runJob(harness.job([vm2]), harness.env())).vms)
    assert.equal(run.status, 'success', run.error)
    assert.deepEqual(taggedDisks(harness, vm2).map(disk => disk.onAVm), [true])
  })

  it('migration blocks a dead run of the job left are lifted by the next run; a block of the user stays', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2')
    await harness.xapi.call('VM.add_to_blocked_operations', vm2.$ref, 'pool_migrate', blockReasonOf('job-1'))
    await harness.xapi.call('VM.add_to_blocked_operations', vm2.$ref, 'migrate_send', blockReasonOf('job-1'))
    await harness.xapi.call('VM.add_to_blocked_operations', vm2.$ref, 'destroy', 'protected by the user')
    sim.clearCalls()
    const run = single((await runJob(harness.job([vm2.uuid]), harness.env())).vms)
    assert.equal(run.status, 'success', run.error)
    assert.deepEqual(sim.findVm(vm2.uuid).blocked_operations, { destroy: 'protected by the user' })
    assert.ok(sim.calls.some(call => call.method === 'VM.update_allowed_operations'))
  })
})
