/**
 * The lifecycle on pools of different ages and abilities: the version gate, `[NOBAK]` disks with
 * and without `VM.snapshot`'s ignore list, and the seed workflow (the remote moved to another
 * URL under the same remote id).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rename } from 'node:fs/promises'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { openHandler } from '../helpers/remotes.js'
import { PROFILES, SUPPORTED_PROFILES } from '../simulator/index.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, RecordingReporter, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

describe('lifecycle: the pool version gate', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness({ profile: 'xenserver-6.2' })
  })

  after(async function () {
    await harness?.close()
  })

  it('refuses a XenServer 6.2 pool with POOL_TOO_OLD naming the pool, the host and the version; takes nothing', async function () {
    const vm1 = harness.pool.sim.findVm('vm1').uuid
    const vmsBefore = harness.pool.sim.all('VM').length
    const reporter = new RecordingReporter()
    const result = await runJob(harness.job([vm1]), harness.env(reporter))
    assert.equal(result.status, 'failure')
    const vm = single(result.vms)
    assert.match(vm.error ?? '', /checkPool \(hook pool-gate\)/)
    assert.match(vm.error ?? '', /"sim-pool".*"sim-host".*XenServer 6\.2\.0/)
    assert.equal(harness.pool.sim.all('VM').length, vmsBefore, 'no snapshot taken')
    assert.deepEqual(await listTree(harness.handler, 'xo-vm-backups'), [])
    assert.deepEqual(reporter.ended.at(-1), { scope: `job > VM "vm1"`, status: 'failure' })
  })

})

for (const profile of SUPPORTED_PROFILES) {
  describe(`lifecycle: a ${PROFILES[profile].productBrand} ${PROFILES[profile].productVersion} pool (profile ${profile})`, function () {
    let harness: Harness

    before(async function () {
      harness = await startHarness({ profile })
    })

    after(async function () {
      await harness?.close()
    })

    it('backs up its halted VM, restorable byte for byte', async function () {
      const vm2 = harness.pool.sim.findVm('vm2').uuid
      const [data] = harness.pool.sim.vdisOf(vm2)
      harness.pool.sim.clearCalls()
      const result = await runJob(harness.job([vm2]), harness.env())
      // changed block tracking is enabled only where NBD will read the deltas; elsewhere, today's path
      const enabled = harness.pool.sim.calls.some(call => call.method === 'VDI.enable_cbt')
      assert.equal(enabled, PROFILES[profile].nbdPurpose !== undefined, `VDI.enable_cbt called: ${enabled}`)
      assert.equal(result.status, 'success', JSON.stringify(result.vms))
      const point = (await restorePointsOf(harness.handler, vm2, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(harness.handler, point, data!.uuid), await harness.pool.sim.hashVdi(data!.uuid))
    })
  })
}

describe('lifecycle: [NOBAK] disks on a pool whose VM.snapshot takes no ignore list', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness({ profile: 'citrix-hypervisor-8.2', inventory: 'empty' })
  })

  after(async function () {
    await harness?.close()
  })

  it('snapshots them, destroys their snapshots before any transfer, and records why they were left out', async function () {
    const { sim } = harness.pool
    const { vm, vdis } = sim.createVm({
      name: 'db',
      disks: [
        { name: 'root', size: 16 * MiB },
        { name: '[NOBAK]tmp', size: 8 * MiB },
        { name: '[NOBAK] swap', size: 8 * MiB },
      ],
    })
    const [root, tmp, swap] = vdis as [string, string, string]
    for (const vdi of vdis) {
      await sim.writeGuest(vdi, BLOCK, randomBytes(4096))
    }
    sim.clearCalls()

    const reporter = new RecordingReporter()
    const result = await runJob(harness.job([vm]), harness.env(reporter))
    const run = single(result.vms)
    assert.equal(run.status, 'success', run.error)
    assert.deepEqual(run.disks.map(disk => disk.vdi), [root])
    assert.deepEqual(run.excluded.map(disk => disk.vdi).sort(), [tmp, swap].sort())

    // VM.snapshot asked with the ignore list, refused, asked again without it
    const snapshotCalls = sim.calls.filter(call => call.method === 'Async.VM.snapshot')
    assert.equal(snapshotCalls.length, 2)
    // the snapshots of the excluded disks were destroyed before the only transfer started
    assert.equal(sim.calls.filter(call => call.method === 'Async.VDI.destroy').length, 2)
    const destroyedAt = reporter.log.flatMap((entry, index) => (/cannot leave disks out of the snapshot of a running VM/.test(entry.message) ? [index] : []))
    const transferAt = reporter.log.findIndex(entry => entry.scope.endsWith('> transfer'))
    assert.equal(destroyedAt.length, 1)
    assert.ok(transferAt > destroyedAt[0]!, reporter.log.map(entry => `${entry.scope}: ${entry.message}`).join('\n'))
    // the run says what it cost
    assert.equal(run.warnings.length, 1)
    assert.match(run.warnings[0]!, /"\[NOBAK\]tmp", "\[NOBAK\] swap".*up to 16 MiB more/)
    const leftovers = sim
      .all('VDI')
      .filter(record => record.is_a_snapshot === true)
      .map(record => sim.record('VDI', String(record.snapshot_of)).uuid)
    assert.deepEqual(leftovers, [root])

    const files = await listTree(harness.handler)
    assert.ok(files.every(file => !file.includes(tmp) && !file.includes(swap)), files.join('\n'))
    const metadata = await readMetadata(harness.handler, run.restorePoint!)
    assert.deepEqual(
      metadata.continuousDelta?.excluded.map(disk => [disk.vdi, disk.reason]).sort(),
      [
        [swap, 'its name starts with [NOBAK]'],
        [tmp, 'its name starts with [NOBAK]'],
      ].sort()
    )
    assert.deepEqual(
      Object.values(metadata.vdis).map(vdi => vdi.$snapshot_of$uuid),
      [root]
    )

    // and the next run is a delta of the included disk only
    await sim.writeGuest(root, 3 * BLOCK, randomBytes(4096))
    const next = single((await runJob(harness.job([vm]), harness.env())).vms)
    assert.deepEqual(next.disks.map(disk => [disk.vdi, disk.mode]), [[root, 'delta']])
    assert.deepEqual(await remoteProblems(harness.handler), [])
  })
})

describe('lifecycle: the seed workflow', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness()
  })

  after(async function () {
    await harness?.close()
  })

  it('a remote moved to another URL under the same remote id continues its chain with a delta', async function () {
    const { sim } = harness.pool
    const vm2 = sim.findVm('vm2').uuid
    const [data] = sim.vdisOf(vm2)
    const first = single((await runJob(harness.job([vm2]), harness.env())).vms)
    assert.deepEqual(first.disks.map(disk => disk.mode), ['full'])

    // carry the seed to its new home and point the same remote id at it
    const oldPath = harness.remote.path!
    const newPath = `${oldPath}-moved`
    await rename(oldPath, newPath)
    const moved = await openHandler(`file://${newPath}`)
    harness.handler = moved.value
    try {
      for (const block of [1, 5, 9]) {
        await sim.writeGuest(data!.uuid, block * BLOCK, randomBytes(8192))
      }
      const next = single((await runJob(harness.job([vm2]), harness.env())).vms)
      assert.equal(next.status, 'success', next.error)
      assert.deepEqual(next.disks.map(disk => disk.mode), ['delta'], next.warnings.join('; '))
      const size = next.disks[0]!.size
      assert.ok(size >= 3 * BLOCK && size < 3 * BLOCK + MiB, `${size} bytes for 3 changed blocks`)
      const point = (await restorePointsOf(moved.value, vm2, 'job-1')).at(-1)!
      assert.equal(await hashRestoredDisk(moved.value, point, data!.uuid), await sim.hashVdi(data!.uuid))
      assert.deepEqual(await remoteProblems(moved.value), [])
    } finally {
      await moved.dispose()
      await rename(newPath, oldPath)
      harness.handler = harness.remote.handler
    }
  })
})
