/**
 * Whole-VM restore from the remote alone: the source VM, its snapshots and its SR destroyed,
 * the VM recreated with the same disks (by hash), devices, MACs and networks.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { restoreVm } from '../../src/restore/restore-vm.js'
import { RESTORED_TAG } from '../../src/restore/create-records.js'
import { connectXapi, startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool, Xapi } from '../helpers/pool.js'
import { BLOCK, MiB, RecordingReporter, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { SUITE_PROFILES } from '../helpers/profiles.js'
import type { ProfileName } from '../simulator/profiles.js'

const MACS = ['02:00:00:aa:00:01', '02:00:00:aa:00:02']

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

interface VmShape {
  readonly disks: { userdevice: string; bootable: boolean; hash: string; size: number }[]
  readonly vifs: { device: string; MAC: string; network: string }[]
}

/** what a restore must give back: per disk its device, bootable flag, size and content hash; per VIF its MAC and network name */
async function shapeOf(pool: SimulatedPool, vmUuid: string): Promise<VmShape> {
  const { sim } = pool
  const vm = sim.record('VM', vmUuid)
  const disks: VmShape['disks'] = []
  for (const vbdRef of vm.VBDs as string[]) {
    const vbd = sim.record('VBD', vbdRef)
    if (vbd.type !== 'Disk' || vbd.empty === true) continue
    const vdi = sim.record('VDI', String(vbd.VDI))
    disks.push({ userdevice: String(vbd.userdevice), bootable: vbd.bootable === true, hash: await sim.hashVdi(vdi.uuid), size: Number(vdi.virtual_size) })
  }
  const vifs = (vm.VIFs as string[]).map(ref => {
    const vif = sim.record('VIF', ref)
    return { device: String(vif.device), MAC: String(vif.MAC), network: String(sim.record('network', String(vif.network)).name_label) }
  })
  return { disks: disks.sort((a, b) => a.userdevice.localeCompare(b.userdevice)), vifs: vifs.sort((a, b) => a.device.localeCompare(b.device)) }
}

/** every case on the oldest profile and both VHD formats; the representative one on XCP-ng 8.3 too */
const RESTORE_CASES: readonly { remote: 'file' | 'file-vhd-directory'; profile: ProfileName; full: boolean }[] = [
  { remote: 'file', profile: SUITE_PROFILES[0]!, full: true },
  { remote: 'file-vhd-directory', profile: SUITE_PROFILES[0]!, full: true },
  { remote: 'file', profile: SUITE_PROFILES[1]!, full: false },
]

for (const { remote, profile, full } of RESTORE_CASES) {
  const fullOnly = (title: string, fn: Mocha.Func): void => void (full ? it(title, fn) : undefined)
  describe(`restore: a whole VM from its restore points [${remote}, ${profile}]`, function () {
    let harness: Harness
    let vm: string
    let nobak: string
    /** restore point id → the VM's shape at that time (without the [NOBAK] disk) */
    const shapes = new Map<string, VmShape>()

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote, profile })
      const { sim } = harness.pool
      const created = sim.createVm({
        name: 'erp',
        disks: [
          { name: 'boot', size: 16 * MiB, bootable: true },
          { name: 'data', size: 24 * MiB, bootable: false },
          { name: '[NOBAK] cache', size: 8 * MiB },
        ],
        macs: MACS,
      })
      vm = created.vm
      nobak = created.vdis[2]!
      for (let run = 0; run < 3; run++) {
        for (const vdi of created.vdis) {
          await sim.writeGuest(vdi, run * BLOCK + 512, randomBytes(128 * 1024))
        }
        const result = single((await runJob(harness.job([vm]), harness.env())).vms)
        assert.equal(result.status, 'success', result.error)
        const shape = await shapeOf(harness.pool, vm)
        shapes.set(result.restorePoint!, { ...shape, disks: shape.disks.filter(disk => disk.userdevice !== '2') })
      }
    })

    after(async function () {
      await harness?.close()
    })

    it('restores each restore point, after the source VM and its snapshots were destroyed, on the same pool', async function () {
      const { sim } = harness.pool
      const network = sim.defaultNetwork()
      sim.destroyVm(vm)
      assert.throws(() => sim.record('VM', vm))

      for (const point of await restorePointsOf(harness.handler, vm, 'job-1')) {
        const reporter = new RecordingReporter()
        const restored = await restoreVm({ handler: harness.handler, restorePoint: point.id, xapi: harness.xapi, sr: sim.defaultSr(), reporter })
        assert.deepEqual(await shapeOf(harness.pool, restored.vm), shapes.get(point.id), point.id)
        assert.deepEqual(restored.missingDisks.map(disk => [disk.vdi, disk.name]), [[nobak, '[NOBAK] cache']])
        assert.match(reporter.warnings().join('\n'), /"\[NOBAK\] cache" is not in this restore point/)

        const record = sim.record('VM', restored.vm)
        assert.match(String(record.name_label), /^erp \(\d{8}T\d{6}Z\)$/)
        assert.ok((record.tags as string[]).includes(RESTORED_TAG))
        assert.equal(typeof (record.blocked_operations as Record<string, string>).start, 'string')
        for (const vifRef of record.VIFs as string[]) {
          assert.equal(sim.record('network', String(sim.record('VIF', vifRef).network)).uuid, network)
        }
      }
    })

    fullOnly('restores onto another pool when the original SR is gone; networks matched by name', async function () {
      harness.pool.sim.destroySr(harness.pool.sim.defaultSr())
      const other = await startSimulatedPool({ inventory: 'empty' })
      let xapi: Xapi | undefined
      try {
        xapi = await connectXapi(other)
        const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
        const reporter = new RecordingReporter()
        const restored = await restoreVm({ handler: harness.handler, restorePoint: point.id, xapi, sr: other.sim.defaultSr(), reporter })
        assert.deepEqual(await shapeOf(other, restored.vm), shapes.get(point.id))
        assert.notEqual(other.sim.defaultNetwork(), harness.pool.sim.defaultNetwork())
        assert.equal(reporter.warnings().filter(warning => /found by name/.test(warning)).length, MACS.length)
      } finally {
        await xapi?.disconnect()
        await other.close()
      }
    })

    fullOnly('a restore that fails removes what it created', async function () {
      const other = await startSimulatedPool({ inventory: 'empty' })
      let xapi: Xapi | undefined
      try {
        xapi = await connectXapi(other)
        const before = { vms: other.sim.all('VM').length, vdis: other.sim.all('VDI').length, vbds: other.sim.all('VBD').length }
        const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
        // attaching the first disk, once uploaded, fails
        other.sim.faults.failNextCall('VBD.create', 'INTERNAL_ERROR', ['simulated'])
        await assert.rejects(restoreVm({ handler: harness.handler, restorePoint: point.id, xapi, sr: other.sim.defaultSr() }), /INTERNAL_ERROR/)
        assert.deepEqual({ vms: other.sim.all('VM').length, vdis: other.sim.all('VDI').length, vbds: other.sim.all('VBD').length }, before)
      } finally {
        await xapi?.disconnect()
        await other.close()
      }
    })

    fullOnly('refuses an unknown SR and an unknown restore point with coded errors', async function () {
      const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
      await assert.rejects(
        restoreVm({ handler: harness.handler, restorePoint: point.id, xapi: harness.xapi, sr: '0b0b0b0b-0000-4000-8000-000000000000' }),
        { code: 'SR_NOT_FOUND' }
      )
      await assert.rejects(
        restoreVm({ handler: harness.handler, restorePoint: `xo-vm-backups/${vm}/20000101T000000Z.json`, xapi: harness.xapi, sr: 'x' }),
        { code: 'RESTORE_POINT_NOT_FOUND' }
      )
    })
  })
}
