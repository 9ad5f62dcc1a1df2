/**
 * A restore brings back the whole VM, on every profile that can hold it: its firmware and
 * platform (BIOS strings through VM.set_bios_strings, NVRAM, domain type, hardware platform
 * version), its vTPM with the same contents, its CD drive, its interfaces on their networks
 * (by uuid, else on their VLAN) with their MACs or new ones, its disks byte-exact, also onto the
 * second SR when the original one is gone. What a pool cannot hold is said, never lost silently.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { runJob } from '../../src/lifecycle/run-job.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { RESTORED_TAG } from '../../src/restore/create-records.js'
import { restoreVm, type RestoreVmResult } from '../../src/restore/restore-vm.js'
import { connectXapi, startSimulatedPool, type Xapi } from '../helpers/pool.js'
import { MiB, RecordingReporter, startHarness, type Harness } from '../lifecycle/harness.js'
import { profileNamed, type ProfileName } from '../simulator/profiles.js'
import { GENERIC_BIOS_STRINGS } from '../simulator/vm-methods.js'
import type { Simulator } from '../simulator/index.js'

const MACS = ['02:00:00:bb:00:01', '02:00:00:bb:00:02']
const TPM = randomBytes(3000).toString('base64')
const EFI_VARS = randomBytes(1500).toString('base64')
const BIOS_STRINGS = { ...GENERIC_BIOS_STRINGS, 'system-manufacturer': 'ACME', 'system-serial-number': 'SN-4242' }

/** the VM fields a restore gives back as they were, on every profile */
const SAME_FIELDS = [
  'name_description',
  'user_version',
  'memory_static_max',
  'memory_dynamic_max',
  'memory_dynamic_min',
  'memory_static_min',
  'VCPUs_params',
  'VCPUs_max',
  'VCPUs_at_startup',
  'actions_after_shutdown',
  'actions_after_reboot',
  'actions_after_crash',
  'PV_bootloader',
  'PV_kernel',
  'PV_ramdisk',
  'PV_args',
  'PV_bootloader_args',
  'PV_legacy_args',
  'HVM_boot_policy',
  'HVM_boot_params',
  'HVM_shadow_multiplier',
  'platform',
  'PCI_bus',
  'recommendations',
  'xenstore_data',
  'has_vendor_device',
  'ha_restart_priority',
  'start_delay',
  'shutdown_delay',
  'order',
  'hardware_platform_version',
]

interface Source {
  readonly vm: string
  readonly vdis: readonly string[]
  readonly hashes: readonly string[]
  readonly vlanNetwork: string
}

/** the guest's life: UEFI firmware, its variables, BIOS strings, a vTPM where the pool has them */
function giveState(sim: Simulator, profile: ProfileName, vm: string): void {
  const { absentFields, absentClasses, absentMethods } = profileNamed(profile)
  const hasVmField = (field: string): boolean => !(absentFields.VM ?? []).includes(field)
  sim.setVmState(vm, {
    name_description: 'ERP database, restored whole',
    memory_static_max: 4 * 1024 ** 3,
    memory_dynamic_max: 3 * 1024 ** 3,
    memory_dynamic_min: 2 * 1024 ** 3,
    memory_static_min: 1024 ** 3,
    VCPUs_max: 4,
    VCPUs_at_startup: 2,
    VCPUs_params: { weight: '512', cap: '0' },
    actions_after_crash: 'destroy',
    HVM_boot_params: { order: 'dc', firmware: 'uefi' },
    platform: { 'device-model': 'qemu-upstream-uefi', secureboot: 'true', 'cores-per-socket': '2', viridian: 'true', acpi: '1' },
    xenstore_data: { 'vm-data/role': 'erp' },
    has_vendor_device: true,
    ha_restart_priority: 'best-effort',
    start_delay: 5,
    order: 2,
    hardware_platform_version: 2,
    tags: ['production'],
    other_config: { base_template_name: 'Windows 11', mac_seed: '5e4d1f5a-6d6b-4c3e-9b1a-2f0d9c8e7a61' },
    ...(absentMethods.includes('VM.set_bios_strings') ? {} : { bios_strings: BIOS_STRINGS }),
    ...(hasVmField('NVRAM') ? { NVRAM: { 'EFI-variables': EFI_VARS } } : {}),
    ...(hasVmField('domain_type') ? { domain_type: 'hvm' } : {}),
  })
  if (!absentClasses.includes('VTPM')) sim.addVtpm(vm, TPM)
}

/** the VM's CD drives, its interfaces (device, MAC, network uuid) */
function devicesOf(sim: Simulator, vm: string) {
  const record = sim.record('VM', vm)
  const cds = (record.VBDs as string[])
    .map(ref => sim.record('VBD', ref))
    .filter(vbd => vbd.type === 'CD')
    .map(vbd => ({ userdevice: vbd.userdevice, empty: vbd.empty, bootable: vbd.bootable }))
  const vifs = (record.VIFs as string[])
    .map(ref => sim.record('VIF', ref))
    .map(vif => ({ device: String(vif.device), MAC: String(vif.MAC), network: sim.record('network', String(vif.network)).uuid }))
    .sort((a, b) => a.device.localeCompare(b.device))
  return { cds, vifs }
}

async function diskHashes(sim: Simulator, vm: string): Promise<{ hashes: string[]; srs: string[] }> {
  const vdis = sim.vdisOf(vm)
  return { hashes: await Promise.all(vdis.map(vdi => sim.hashVdi(vdi.uuid))), srs: vdis.map(vdi => sim.record('SR', String(vdi.SR)).uuid) }
}

const PROFILES: readonly ProfileName[] = ['xenserver-6.5', 'citrix-hypervisor-8.2', 'xcp-ng-8.3']

for (const profile of PROFILES) {
  describe(`restore fidelity: the whole VM comes back [${profile}]`, function () {
    const { absentFields, absentClasses, absentMethods } = profileNamed(profile)
    let harness: Harness
    let source: Source
    let point: string

    before(async function () {
      harness = await startHarness({ inventory: 'empty', profile })
      const { sim } = harness.pool
      const vlanNetwork = sim.addNetwork('storage VLAN 42', 42)
      const created = sim.createVm({ name: 'erp', disks: [{ name: 'boot', size: 8 * MiB, bootable: true }, { name: 'data', size: 6 * MiB }], macs: MACS })
      // the second interface on the VLAN network
      const vif = sim.record('VM', created.vm).VIFs as string[]
      await harness.xapi.call('VIF.destroy', vif[1]!)
      await harness.xapi.call('VIF.create', {
        VM: sim.record('VM', created.vm).$ref,
        network: sim.record('network', vlanNetwork).$ref,
        device: '1',
        MAC: MACS[1],
        MTU: 1500,
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      })
      giveState(sim, profile, created.vm)
      for (const vdi of created.vdis) await sim.writeGuest(vdi, 3 * MiB + 512, randomBytes(200 * 1024))
      const run = (await runJob(harness.job([created.vm]), harness.env())).vms[0]!
      assert.equal(run.status, 'success', run.error)
      point = run.restorePoint!
      source = { vm: created.vm, vdis: created.vdis, hashes: (await diskHashes(sim, created.vm)).hashes, vlanNetwork }
    })

    after(async function () {
      await harness?.close()
    })

    async function restore(extra: { newMacAddresses?: boolean; sr?: string } = {}): Promise<{ result: RestoreVmResult; warnings: string[] }> {
      const reporter = new RecordingReporter()
      const result = await restoreVm({ handler: harness.handler, restorePoint: point, xapi: harness.xapi, sr: extra.sr ?? harness.pool.sim.defaultSr(), reporter, ...extra })
      return { result, warnings: reporter.warnings() }
    }

    it("records the VM as Xen Orchestra's format has it: vTPM contents, the networks' VLAN, the CD drive in our extras", async function () {
      const metadata = await readMetadata(harness.handler, point)
      assert.deepEqual(metadata.vtpms, absentClasses.includes('VTPM') ? [] : [TPM])
      const vlans = Object.values(metadata.vifs).map(vif => vif.$network$VLAN).sort()
      assert.deepEqual(vlans, [-1, 42])
      assert.deepEqual(metadata.continuousDelta?.cdDrives?.length, 1)
      assert.ok(Object.values(metadata.vbds).every(vbd => vbd.type === 'Disk'), 'XO keeps disk drives only in vbds')
    })

    it('every recorded field, the disks (sha256), the CD drive, the interfaces and the vTPM come back', async function () {
      const { sim } = harness.pool
      harness.pool.sim.clearCalls()
      const { result, warnings } = await restore()
      const restored = sim.record('VM', result.vm)
      const original = sim.record('VM', source.vm)
      for (const field of SAME_FIELDS) assert.deepEqual(restored[field], original[field], field)
      for (const field of ['NVRAM', 'domain_type']) {
        if ((absentFields.VM ?? []).includes(field)) assert.equal(field in restored, false)
        else assert.deepEqual(restored[field], original[field], field)
      }
      assert.deepEqual(restored.other_config, original.other_config)
      assert.deepEqual(restored.tags, [...(original.tags as string[]), RESTORED_TAG])
      assert.deepEqual((await diskHashes(sim, result.vm)).hashes, source.hashes)
      assert.deepEqual(devicesOf(sim, result.vm), devicesOf(sim, source.vm))
      assert.equal(devicesOf(sim, result.vm).cds[0]?.empty, true)

      const create = sim.calls.find(call => call.method === 'VM.create')!.params[0] as Record<string, unknown>
      assert.equal('bios_strings' in create, false, 'BIOS strings go through VM.set_bios_strings')
      assert.equal('HVM_shadow_multiplier' in create, false, 'left out at its default, as XO does')

      if (absentMethods.includes('VM.set_bios_strings')) {
        assert.deepEqual(restored.bios_strings, {})
      } else {
        assert.deepEqual(restored.bios_strings, original.bios_strings)
      }
      if (absentClasses.includes('VTPM')) {
        assert.deepEqual(restored.VTPMs, [])
      } else {
        assert.deepEqual(sim.vtpmContentsOf(result.vm), [TPM])
        assert.notDeepEqual(restored.VTPMs, original.VTPMs)
      }
      assert.deepEqual(result.notRestored, [], warnings.join('\n'))
      assert.deepEqual(warnings, [])
    })

    it('with new MAC addresses: each interface gets a MAC of its own, on the same network', async function () {
      const { sim } = harness.pool
      const { result } = await restore({ newMacAddresses: true })
      const before = devicesOf(sim, source.vm).vifs
      const after = devicesOf(sim, result.vm).vifs
      assert.deepEqual(after.map(vif => [vif.device, vif.network]), before.map(vif => [vif.device, vif.network]))
      for (const [index, vif] of after.entries()) assert.notEqual(vif.MAC, before[index]!.MAC)
      assert.notEqual((sim.record('VM', result.vm).other_config as Record<string, string>).mac_seed, (sim.record('VM', source.vm).other_config as Record<string, string>).mac_seed)
    })

    it("an interface whose network is gone goes on a network of the same VLAN, not on a namesake of another VLAN", async function () {
      const { sim } = harness.pool
      sim.removeNetwork(source.vlanNetwork)
      sim.addNetwork('storage VLAN 42', 7)
      const replacement = sim.addNetwork('storage (new switch)', 42)
      const { result, warnings } = await restore()
      const vif = devicesOf(sim, result.vm).vifs.find(candidate => candidate.device === '1')!
      assert.equal(vif.network, replacement)
      assert.equal(vif.MAC, MACS[1])
      assert.match(warnings.join('\n'), /interface 1 .* found by its VLAN \(42\)/)
    })

    it('onto the second SR when the original SR is gone: disks byte-exact there', async function () {
      const { sim } = harness.pool
      sim.destroyVm(source.vm)
      sim.destroySr(sim.defaultSr())
      const { result } = await restore({ sr: sim.secondSr() })
      const { hashes, srs } = await diskHashes(sim, result.vm)
      assert.deepEqual(hashes, source.hashes)
      assert.deepEqual(srs, [sim.secondSr(), sim.secondSr()])
    })
  })
}

describe('restore fidelity: a VM with vTPM and UEFI variables onto a pool that cannot hold them', function () {
  let harness: Harness
  let point: string
  let vm: string

  before(async function () {
    harness = await startHarness({ inventory: 'empty', profile: 'xcp-ng-8.3' })
    const { sim } = harness.pool
    vm = sim.createVm({ name: 'win11', disks: [{ name: 'C', size: 4 * MiB }] }).vm
    giveState(sim, 'xcp-ng-8.3', vm)
    const run = (await runJob(harness.job([vm]), harness.env())).vms[0]!
    assert.equal(run.status, 'success', run.error)
    point = run.restorePoint!
  })

  after(async function () {
    await harness?.close()
  })

  for (const profile of ['xenserver-6.5', 'citrix-hypervisor-8.2'] as const) {
    it(`onto ${profile}: restored, saying in warnings and in the result what it could not bring back`, async function () {
      const other = await startSimulatedPool({ inventory: 'empty', profile })
      let xapi: Xapi | undefined
      try {
        xapi = await connectXapi(other)
        const reporter = new RecordingReporter()
        const result = await restoreVm({ handler: harness.handler, restorePoint: point, xapi, sr: other.sim.defaultSr(), reporter })
        const warnings = reporter.warnings().join('\n')
        const expected = profile === 'xenserver-6.5' ? ['NVRAM', 'bios_strings', 'vTPM'] : ['vTPM']
        assert.deepEqual([...result.notRestored].sort(), expected.sort())
        assert.match(warnings, /WITHOUT its TPM/)
        if (profile === 'xenserver-6.5') {
          assert.match(warnings, /NVRAM \(UEFI variables, Secure Boot keys\) could not be restored/)
          assert.match(warnings, /BIOS strings could not be restored .*system-serial-number=SN-4242/)
        } else {
          assert.deepEqual(other.sim.record('VM', result.vm).NVRAM, { 'EFI-variables': EFI_VARS })
          assert.equal((other.sim.record('VM', result.vm).bios_strings as Record<string, string>)['system-serial-number'], 'SN-4242')
        }
        assert.equal(other.sim.vdisOf(result.vm).length, 1)
      } finally {
        await xapi?.disconnect()
        await other.close()
      }
    })
  }
})
