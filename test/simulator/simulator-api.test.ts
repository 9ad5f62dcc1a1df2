import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'

const MiB = 1024 ** 2

describe('simulator API for tests', () => {
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

  it('creates a VM with the disks and MACs asked, visible to the client', async () => {
    const { vm, vdis } = pool.sim.createVm({
      name: 'web',
      disks: [
        { name: 'root', size: 8 * MiB },
        { name: 'data', size: 4 * MiB, bootable: true },
      ],
      macs: ['02:aa:bb:cc:dd:01', '02:aa:bb:cc:dd:02'],
    })
    await xapi.barrier()
    const cached = xapi.getObjectByUuid(vm) as unknown as {
      name_label: string
      $VBDs: { type: string; bootable: boolean; $VDI?: { uuid: string; virtual_size: number } }[]
      $VIFs: { MAC: string }[]
    }
    assert.equal(cached.name_label, 'web')
    const disks = cached.$VBDs.filter(vbd => vbd.type === 'Disk')
    assert.deepEqual(disks.map(vbd => vbd.$VDI!.uuid), vdis)
    assert.deepEqual(disks.map(vbd => vbd.$VDI!.virtual_size), [8 * MiB, 4 * MiB])
    assert.deepEqual(disks.map(vbd => vbd.bootable), [true, true])
    assert.deepEqual(cached.$VIFs.map(vif => vif.MAC).sort(), ['02:aa:bb:cc:dd:01', '02:aa:bb:cc:dd:02'])
    assert.deepEqual(pool.sim.vdisOf(vm).map(vdi => vdi.uuid), vdis)
    assert.equal(pool.sim.findVm('web').uuid, vm)
    assert.equal(pool.sim.findVm(vm).name_label, 'web')
    assert.throws(() => pool.sim.findVm('nope'))
    await assert.rejects(pool.sim.writeGuest(vdis[1]!, 4 * MiB - 10, Buffer.alloc(11)), RangeError)
  })

  it('renames a VDI with an event the client sees', async () => {
    const [disk] = pool.sim.vdisOf(pool.sim.findVm('vm1').uuid)
    pool.sim.renameVdi(disk!.uuid, '[NOBAK] now excluded')
    await xapi.barrier()
    assert.equal(xapi.getObjectByUuid(disk!.uuid).name_label, '[NOBAK] now excluded')
  })

  it('destroys a VM with its snapshots, their disks and files', async () => {
    const vm = pool.sim.findVm('vm1')
    await pool.sim.writeGuest(pool.sim.vdisOf(vm.uuid)[0]!.uuid, MiB, randomBytes(512))
    const snapshot = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'backup')
    const disks = [...pool.sim.vdisOf(vm.uuid), ...pool.sim.vdisOf(pool.sim.record('VM', snapshot).uuid)]
    const files = disks.map(vdi => pool.sim.vdiPath(vdi.uuid))
    assert.equal(disks.length, 4)

    pool.sim.destroyVm(vm.uuid)
    await xapi.barrier()
    assert.throws(() => pool.sim.findVm('vm1'))
    assert.equal(xapi.getObjectByRef(snapshot, undefined), undefined)
    for (const vdi of disks) assert.equal(xapi.getObjectByUuid(vdi.uuid, undefined), undefined)
    assert.equal(pool.sim.all('VBD').filter(vbd => vbd.VM === vm.$ref || vbd.VM === snapshot).length, 0)
    assert.ok(!(pool.sim.record('host', pool.sim.all('host')[0]!.$ref).resident_VMs as string[]).includes(vm.$ref))
    for (const file of files) assert.equal(existsSync(file), false, file)
    assert.equal(pool.sim.findVm('vm2').name_label, 'vm2')
  })

  it('destroys an SR with every VDI on it', async () => {
    const sr = pool.sim.defaultSr()
    const vdiCount = pool.sim.all('VDI').length
    assert.ok(vdiCount > 0)
    pool.sim.destroySr(sr)
    await xapi.barrier()
    assert.deepEqual(pool.sim.all('VDI'), [])
    // the other SR keeps its PBD
    assert.deepEqual(pool.sim.all('PBD').map(pbd => pbd.SR), [pool.sim.record('SR', pool.sim.secondSr()).$ref])
    assert.equal(xapi.getObjectByUuid(sr, undefined), undefined)
    assert.deepEqual(pool.sim.vdisOf(pool.sim.findVm('vm1').uuid), [])
  })
})
