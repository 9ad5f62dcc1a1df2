import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { vbdCreateArgs, vdiCreateArgs, vifCreateArgs, vmCreateArgs } from './test-support.js'
import { NULL_REF } from './xapi-types.js'

const MiB = 1024 ** 2

describe('simulated pool: snapshots and object life cycle', () => {
  let pool: SimulatedPool
  let xapi: Xapi

  beforeEach(async () => {
    pool = await startSimulatedPool()
    xapi = await connectXapi(pool)
  })
  afterEach(async () => {
    await xapi.disconnect()
    await pool.close()
  })

  it('snapshots every disk, VBD and VIF of a VM, and the client sees them when the task ends', async () => {
    const vm = pool.sim.findVm('vm1')
    const disks = pool.sim.vdisOf(vm.uuid)
    const hashesBefore = await Promise.all(disks.map(disk => pool.sim.hashVdi(disk.uuid)))

    const snapshotRef = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'backup')
    // the new objects were announced before the task's success
    const cached = xapi.getObjectByRef(snapshotRef) as unknown as {
      uuid: string
      is_a_snapshot: boolean
      snapshot_of: string
      snapshot_time: string
      power_state: string
      $VBDs: { type: string; userdevice: string; $VDI?: { uuid: string; is_a_snapshot: boolean; snapshot_of: string; name_label: string } }[]
      $VIFs: { MAC: string; device: string }[]
    }
    assert.equal(cached.is_a_snapshot, true)
    assert.equal(cached.snapshot_of, vm.$ref)
    assert.equal(cached.power_state, 'Halted')
    assert.match(cached.snapshot_time, /^\d{8}T\d{2}:\d{2}:\d{2}Z$/)
    assert.notEqual(cached.uuid, vm.uuid)

    const snapDisks = cached.$VBDs.filter(vbd => vbd.type === 'Disk').map(vbd => vbd.$VDI!)
    assert.deepEqual(snapDisks.map(vdi => vdi.name_label), disks.map(disk => disk.name_label))
    snapDisks.forEach((vdi, index) => {
      assert.equal(vdi.is_a_snapshot, true)
      assert.equal(vdi.snapshot_of, disks[index]!.$ref)
      assert.notEqual(vdi.uuid, disks[index]!.uuid)
    })
    assert.ok(cached.$VBDs.some(vbd => vbd.type === 'CD'), 'the CD drive is copied')
    const sourceVifs = (vm.VIFs as string[]).map(ref => pool.sim.record('VIF', ref))
    assert.deepEqual(cached.$VIFs.map(vif => [vif.device, vif.MAC]), sourceVifs.map(vif => [vif.device, vif.MAC]))
    assert.deepEqual(pool.sim.record('VM', vm.uuid).snapshots, [snapshotRef])

    // a snapshot holds the content of the instant it was taken
    const snapHashes = await Promise.all(snapDisks.map(vdi => pool.sim.hashVdi(vdi.uuid)))
    assert.deepEqual(snapHashes, hashesBefore)
    await pool.sim.writeGuest(disks[0]!.uuid, 3 * MiB, randomBytes(4096))
    assert.equal(await pool.sim.hashVdi(snapDisks[0]!.uuid), hashesBefore[0])
    assert.notEqual(await pool.sim.hashVdi(disks[0]!.uuid), hashesBefore[0])
  })

  it('on XenServer 6.5 (the default profile), VM.snapshot refuses a third argument', async () => {
    const vm = pool.sim.findVm('vm1')
    await assert.rejects(xapi.callAsync('VM.snapshot', vm.$ref, 'backup', []), {
      code: 'MESSAGE_PARAMETER_COUNT_MISMATCH',
      params: ['VM.snapshot', '2', '3'],
    })
    const snapshotRef = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'backup')
    assert.equal(pool.sim.vdisOf(pool.sim.record('VM', snapshotRef).uuid).length, 2)
  })

  it('destroys snapshots and their VDIs; refuses to destroy a disk in use', async () => {
    const vm = pool.sim.findVm('vm1')
    const snapshotRef = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'backup')
    const snapDisks = pool.sim.vdisOf(pool.sim.record('VM', snapshotRef).uuid)
    await xapi.callAsync('VM.destroy', snapshotRef)
    for (const vdi of snapDisks) await xapi.callAsync('VDI.destroy', vdi.$ref)
    await xapi.barrier()
    assert.equal(xapi.getObjectByRef(snapshotRef, undefined), undefined)
    assert.deepEqual(pool.sim.record('VM', vm.uuid).snapshots, [])
    for (const vdi of snapDisks) {
      assert.throws(() => pool.sim.record('VDI', vdi.uuid))
      assert.throws(() => pool.sim.vdiPath(vdi.uuid))
    }
    const [attached] = pool.sim.vdisOf(vm.uuid)
    await assert.rejects(xapi.callAsync('VDI.destroy', attached!.$ref), { code: 'VDI_IN_USE' })

    const blocked = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'blocked')
    await xapi.call('VM.add_to_blocked_operations', blocked, 'destroy', 'backup in progress')
    await assert.rejects(xapi.callAsync('VM.destroy', blocked), { code: 'OPERATION_BLOCKED', params: [blocked, 'backup in progress'] })
    await xapi.call('VM.remove_from_blocked_operations', blocked, 'destroy')
    await xapi.callAsync('VM.destroy', blocked)
  })

  it('snapshots and grows a single VDI', async () => {
    const [system] = pool.sim.vdisOf(pool.sim.findVm('vm1').uuid)
    const copyRef = await xapi.callAsync<string>('VDI.snapshot', system!.$ref, {})
    const copy = pool.sim.record('VDI', copyRef)
    assert.equal(copy.snapshot_of, system!.$ref)
    assert.equal(await pool.sim.hashVdi(copy.uuid), await pool.sim.hashVdi(system!.uuid))
    await xapi.callAsync('VDI.resize', copyRef, 128 * MiB)
    assert.equal(pool.sim.record('VDI', copyRef).virtual_size, 128 * MiB)
    assert.equal((await import('node:fs')).statSync(pool.sim.vdiPath(copy.uuid)).size, 128 * MiB)
    await assert.rejects(xapi.callAsync('VDI.resize', copyRef, MiB), { code: 'VDI_SIZE_TOO_SMALL' })
  })

  it('creates VMs, VDIs, VBDs and VIFs as a restore does', async () => {
    const srRef = await xapi.call<string>('SR.get_by_uuid', pool.sim.defaultSr())
    const networkRef = await xapi.call<string>('network.get_by_uuid', pool.sim.defaultNetwork())
    const original = pool.sim.findVm('vm1')
    const vmRef = await xapi.call<string>('VM.create', vmCreateArgs({ name_label: 'restored', memory_static_max: 2 * 1024 ** 3, VCPUs_max: 2, uuid: original.uuid }))
    assert.notEqual(pool.sim.record('VM', vmRef).uuid, original.uuid, 'XAPI assigns the uuid')
    assert.equal(pool.sim.findVm(original.uuid).$ref, original.$ref)
    const vdiRef = await xapi.call<string>('VDI.create', vdiCreateArgs({ name_label: 'disk', SR: srRef, virtual_size: 8 * MiB }))
    assert.deepEqual((await xapi.call<string[]>('VM.get_allowed_VBD_devices', vmRef)).slice(0, 3), ['0', '1', '2'])
    await xapi.call('VBD.create', vbdCreateArgs({ VM: vmRef, VDI: vdiRef, userdevice: '0', bootable: true }))
    await xapi.call('VIF.create', vifCreateArgs({ VM: vmRef, network: networkRef, device: '0', MAC: '02:11:22:33:44:55' }))
    assert.deepEqual((await xapi.call<string[]>('VM.get_allowed_VBD_devices', vmRef)).slice(0, 2), ['1', '2'])
    assert.deepEqual((await xapi.call<string[]>('VM.get_allowed_VIF_devices', vmRef)).slice(0, 2), ['1', '2'])
    await assert.rejects(xapi.call('VBD.create', vbdCreateArgs({ VM: vmRef, VDI: vdiRef, userdevice: '0' })), {
      code: 'DEVICE_ALREADY_EXISTS',
    })

    const vm = pool.sim.record('VM', vmRef)
    assert.equal(vm.name_label, 'restored')
    assert.equal(vm.power_state, 'Halted')
    assert.equal(vm.VCPUs_max, 2)
    assert.notEqual(vm.metrics, NULL_REF)
    const [disk] = pool.sim.vdisOf(vm.uuid)
    assert.equal(disk!.virtual_size, 8 * MiB)
    assert.ok((pool.sim.record('SR', srRef).VDIs as string[]).includes(vdiRef))
    assert.equal(pool.sim.record('VIF', (vm.VIFs as string[])[0]!).MAC, '02:11:22:33:44:55')
    // a new disk reads as zeros
    assert.equal(await pool.sim.hashVdi(disk!.uuid), await hashOfZeros(8 * MiB))
  })
})

async function hashOfZeros(size: number): Promise<string> {
  const { createHash } = await import('node:crypto')
  const hash = createHash('sha256')
  const chunk = Buffer.alloc(MiB)
  for (let done = 0; done < size; done += MiB) hash.update(chunk.subarray(0, Math.min(MiB, size - done)))
  return hash.digest('hex')
}

describe('simulated pool: VM.snapshot with ignore_vdis (XCP-ng 8.3)', () => {
  let pool: SimulatedPool
  let xapi: Xapi

  before(async () => {
    pool = await startSimulatedPool({ profile: 'xcp-ng-8.3' })
    xapi = await connectXapi(pool)
  })
  after(async () => {
    await xapi.disconnect()
    await pool.close()
  })

  it('leaves out the VDIs listed in ignore_vdis', async () => {
    const vm = pool.sim.findVm('vm1')
    const [system, scratch] = pool.sim.vdisOf(vm.uuid)
    const snapshotRef = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'backup', [scratch!.$ref])
    const snapDisks = pool.sim.vdisOf(pool.sim.record('VM', snapshotRef).uuid)
    assert.deepEqual(snapDisks.map(vdi => vdi.snapshot_of), [system!.$ref])
    assert.deepEqual(pool.sim.record('VDI', scratch!.uuid).snapshots, [])
  })
})
