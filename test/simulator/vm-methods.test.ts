/** Building a VM is as strict as XAPI: VM.create's field set, VM.set_bios_strings, VTPM, CD drives. */
import assert from 'node:assert/strict'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import type { ProfileName } from './profiles.js'
import { vbdCreateArgs, vdiCreateArgs, vifCreateArgs, vmCreateArgs } from './test-support.js'
import { VM_CREATE_REQUIRED } from './vm-methods.js'
import { NULL_REF } from './xapi-types.js'

const CONTENTS = Buffer.from('swtpm state: endorsement seed and NV indexes').toString('base64')

function onProfile(profile: ProfileName, suite: (get: () => { pool: SimulatedPool; xapi: Xapi }) => void): void {
  describe(`simulated pool building VMs [${profile}]`, () => {
    let pool: SimulatedPool
    let xapi: Xapi
    before(async () => {
      pool = await startSimulatedPool({ profile })
      xapi = await connectXapi(pool)
    })
    after(async () => {
      await xapi.disconnect()
      await pool.close()
    })
    suite(() => ({ pool, xapi }))
  })
}

onProfile('xenserver-6.5', get => {
  it('VM.create refuses a record lacking a required field, or with a field of another type, as XAPI does', async () => {
    const { xapi } = get()
    for (const field of VM_CREATE_REQUIRED) {
      const { [field]: _dropped, ...args } = vmCreateArgs()
      await assert.rejects(xapi.call('VM.create', args), { code: 'INTERNAL_ERROR', params: [`Server_helpers.Dispatcher_FieldNotFound("${field}")`] }, field)
    }
    await assert.rejects(xapi.call('VM.create', vmCreateArgs({ VCPUs_max: 'two' })), { code: 'FIELD_TYPE_ERROR', params: ['VCPUs_max'] })
    await assert.rejects(xapi.call('VM.create', vmCreateArgs({ platform: { acpi: 1 } })), { code: 'FIELD_TYPE_ERROR', params: ['platform'] })
    await assert.rejects(xapi.call('VM.create', vmCreateArgs({ affinity: 'OpaqueRef:gone' })), { code: 'HANDLE_INVALID' })
    await assert.rejects(xapi.call('VM.create', vmCreateArgs({ memory_dynamic_min: 2 * 1024 ** 3 })), { code: 'MEMORY_CONSTRAINT_VIOLATION' })
  })

  it('VM.create ignores what is no constructor field (bios_strings; NVRAM and domain_type before 7.5) and seeds a mac_seed', async () => {
    const { pool, xapi } = get()
    const ref = await xapi.call<string>(
      'VM.create',
      vmCreateArgs({ name_label: 'x', bios_strings: { 'system-serial-number': 'S1' }, NVRAM: { 'EFI-variables': 'AAAA' }, domain_type: 'hvm', VTPMs: ['OpaqueRef:x'] })
    )
    const vm = pool.sim.record('VM', ref)
    assert.deepEqual(vm.bios_strings, {})
    assert.equal('NVRAM' in vm, false)
    assert.deepEqual(vm.VTPMs, [])
    assert.match((vm.other_config as Record<string, string>).mac_seed ?? '', /^[0-9a-f-]{36}$/)
  })

  it('has no VM.set_bios_strings and no VTPM class', async () => {
    const { pool, xapi } = get()
    await assert.rejects(xapi.call('VM.set_bios_strings', pool.sim.findVm('vm2').$ref, {}), { code: 'MESSAGE_METHOD_UNKNOWN' })
    await assert.rejects(xapi.call('VTPM.create', pool.sim.findVm('vm2').$ref, false), { code: 'MESSAGE_METHOD_UNKNOWN' })
  })

  it('VBD.create: an empty CD drive; a disk drive needs its VDI; the required fields', async () => {
    const { pool, xapi } = get()
    const vm = await xapi.call<string>('VM.create', vmCreateArgs())
    const cd = await xapi.call<string>('VBD.create', vbdCreateArgs({ VM: vm, VDI: NULL_REF, type: 'CD', mode: 'RO', empty: true, userdevice: '3' }))
    assert.deepEqual([pool.sim.record('VBD', cd).type, pool.sim.record('VBD', cd).empty, pool.sim.record('VBD', cd).userdevice], ['CD', true, '3'])
    await assert.rejects(xapi.call('VBD.create', vbdCreateArgs({ VM: vm, VDI: NULL_REF })), { code: 'VBD_NOT_REMOVABLE_MEDIA' })
    await assert.rejects(xapi.call('VBD.create', vbdCreateArgs({ VM: vm, VDI: NULL_REF, type: 'CD', mode: 'RO', empty: false })), { code: 'VBD_IS_EMPTY' })
    const { qos_algorithm_params: _dropped, ...lacking } = vbdCreateArgs({ VM: vm, VDI: NULL_REF, type: 'CD', mode: 'RO', empty: true })
    await assert.rejects(xapi.call('VBD.create', lacking), { code: 'INTERNAL_ERROR' })
  })
})

onProfile('xenserver-6.5', get => {
  it('VDI.create and VIF.create want their required fields; a VIF a valid MAC or none, and a free device', async () => {
    const { pool, xapi } = get()
    const sr = await xapi.call<string>('SR.get_by_uuid', pool.sim.defaultSr())
    const network = await xapi.call<string>('network.get_by_uuid', pool.sim.defaultNetwork())
    await assert.rejects(xapi.call('VDI.create', { name_label: 'd', SR: sr, virtual_size: 1024 ** 2, type: 'user' }), {
      code: 'INTERNAL_ERROR',
      params: ['Server_helpers.Dispatcher_FieldNotFound("name_description")'],
    })
    await xapi.call('VDI.create', vdiCreateArgs({ SR: sr, virtual_size: 1024 ** 2 }))
    const vm = await xapi.call<string>('VM.create', vmCreateArgs())
    await assert.rejects(xapi.call('VIF.create', { VM: vm, network, device: '0', MAC: '' }), { code: 'INTERNAL_ERROR' })
    await assert.rejects(xapi.call('VIF.create', vifCreateArgs({ VM: vm, network, MAC: 'not-a-mac' })), { code: 'MAC_INVALID' })
    const vif = await xapi.call<string>('VIF.create', vifCreateArgs({ VM: vm, network }))
    assert.match(String(pool.sim.record('VIF', vif).MAC), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
    await assert.rejects(xapi.call('VIF.create', vifCreateArgs({ VM: vm, network, device: '0' })), { code: 'DEVICE_ALREADY_EXISTS' })
  })
})

onProfile('citrix-hypervisor-8.2', get => {
  it('VM.create takes NVRAM and domain_type; VM.set_bios_strings once, allowed keys only, over the generic strings', async () => {
    const { pool, xapi } = get()
    const ref = await xapi.call<string>('VM.create', vmCreateArgs({ NVRAM: { 'EFI-variables': 'AAAA' }, domain_type: 'hvm', hardware_platform_version: 2 }))
    assert.deepEqual(pool.sim.record('VM', ref).NVRAM, { 'EFI-variables': 'AAAA' })
    assert.equal(pool.sim.record('VM', ref).hardware_platform_version, 2)
    await assert.rejects(xapi.call('VM.set_bios_strings', ref, { 'oem-1': 'mine' }), { code: 'INVALID_VALUE', params: ['oem-1', 'Unknown key'] })
    await xapi.call('VM.set_bios_strings', ref, { 'system-serial-number': 'S1' })
    const strings = pool.sim.record('VM', ref).bios_strings as Record<string, string>
    assert.equal(strings['system-serial-number'], 'S1')
    assert.equal(strings['bios-vendor'], 'Xen')
    await assert.rejects(xapi.call('VM.set_bios_strings', ref, { 'system-serial-number': 'S2' }), { code: 'VM_BIOS_STRINGS_ALREADY_SET' })
    await assert.rejects(xapi.call('VTPM.get_all'), { code: 'MESSAGE_METHOD_UNKNOWN' })
  })
})

onProfile('xcp-ng-8.3', get => {
  it('VTPM: created on a halted VM only, one per VM, base64 contents set and read back, copied by VM.snapshot, destroyed with its VM', async () => {
    const { pool, xapi } = get()
    await assert.rejects(xapi.call('VTPM.create', pool.sim.findVm('vm1').$ref, false), { code: 'VM_BAD_POWER_STATE' })
    const vm = await xapi.call<string>('VM.create', vmCreateArgs({ name_label: 'tpm' }))
    const vtpm = await xapi.call<string>('VTPM.create', vm, false)
    await assert.rejects(xapi.call('VTPM.create', vm, false), { code: 'VTPM_MAX_AMOUNT_REACHED' })
    assert.equal(await xapi.call('VTPM.get_contents', vtpm), '')
    await assert.rejects(xapi.call('VTPM.set_contents', vtpm, 'not base64!'), { code: 'INTERNAL_ERROR' })
    await xapi.call('VTPM.set_contents', vtpm, CONTENTS)
    assert.equal(await xapi.call('VTPM.get_contents', vtpm), CONTENTS)
    assert.equal(pool.sim.record('VTPM', vtpm).VM, vm)
    assert.equal('contents' in pool.sim.record('VTPM', vtpm), false, 'the contents are a secret, in no record')

    const snapshot = await xapi.callAsync<string>('VM.snapshot', vm, 'snap')
    const [copy] = pool.sim.record('VM', snapshot).VTPMs as string[]
    assert.notEqual(copy, vtpm)
    assert.equal(await xapi.call('VTPM.get_contents', copy), CONTENTS)

    await xapi.callAsync('VM.destroy', vm)
    await assert.rejects(xapi.call('VTPM.get_contents', vtpm), { code: 'HANDLE_INVALID' })
    await xapi.call('VTPM.destroy', copy)
    assert.deepEqual(pool.sim.record('VM', snapshot).VTPMs, [])
  })
})
