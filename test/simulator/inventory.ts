/**
 * Seeds what a real pool has: the pool, its master host (metrics, control domain, PIF), an SR with
 * its PBD and SM, a network; then guest VMs with disks, a CD drive and VIFs.
 */
import { randomBytes } from 'node:crypto'

import type { PoolModel } from './pool-model.js'
import { xapiDate } from './xapi-date.js'
import { NULL_REF } from './xapi-types.js'

export interface SoftwareVersion {
  product_version: string
  product_brand: string
}

export interface GuestDisk {
  name: string
  size: number
  bootable?: boolean
}

export interface GuestSpec {
  name: string
  disks: readonly GuestDisk[]
  macs?: readonly string[]
  /** Default true: the VM runs, its VBDs and VIFs are attached, it has guest metrics. */
  running?: boolean
}

const GiB = 1024 ** 3
const MiB = 1024 ** 2

/** The `software_version` map a host of that product version reports. */
export function softwareVersion({ product_version, product_brand }: SoftwareVersion): Record<string, string> {
  const [major = 8, minor = 0, patch = 0] = product_version.split('.').map(Number)
  const platform = major >= 7 ? `${major - 5}.${minor}.${patch}` : '1.9.0'
  return {
    product_version,
    product_version_text: `${major}.${minor}`,
    product_version_text_short: `${major}.${minor}`,
    product_brand,
    platform_name: 'XCP',
    platform_version: platform,
    build_number: 'release/sim',
    xapi: major >= 8 ? '1.20' : '1.9',
    xen: major >= 8 ? '4.13.5' : '4.4.1',
    linux: major >= 8 ? '4.19.0+1' : '3.10.0+2',
    hostname: 'sim-host',
    date: xapiDate().slice(0, 8),
    dbv: '0.0.1',
    network_backend: 'openvswitch',
  }
}

/** The infrastructure: pool, host, SR, network. Records the refs in `model.infra`. */
export function seedInfrastructure(model: PoolModel, version: SoftwareVersion): void {
  const { store } = model
  const now = xapiDate()
  const metrics = store.create('host_metrics', { memory_total: 32 * GiB, memory_free: 24 * GiB, live: true, last_updated: now })
  const host = store.create('host', {
    name_label: 'sim-host',
    name_description: 'Simulated XenServer host',
    hostname: 'sim-host',
    address: '127.0.0.1',
    software_version: softwareVersion(version),
    metrics,
    capabilities: ['xen-3.0-x86_64', 'hvm-3.0-x86_64'],
    cpu_info: { cpu_count: '4', socket_count: '1', vendor: 'GenuineIntel', speed: '2400.000', modelname: 'Simulated CPU' },
    chipset_info: { iommu: 'false' },
    license_params: { sku_type: 'free', expiry: '30000101T00:00:00Z' },
    bios_strings: { 'bios-vendor': 'Xen', 'system-manufacturer': 'Xen' },
    other_config: { agent_start_time: '0.', boot_time: '0.' },
    edition: 'xcp-ng',
  })
  const pool = store.create('pool', { name_label: 'sim-pool', master: host, other_config: {}, cpu_info: { cpu_count: '4' } })

  const dom0Metrics = store.create('VM_metrics', { memory_actual: 2 * GiB, VCPUs_number: 4, state: [], last_updated: now })
  const dom0 = store.create('VM', {
    name_label: 'Control domain on host: sim-host',
    is_control_domain: true,
    power_state: 'Running',
    resident_on: host,
    domid: 0,
    metrics: dom0Metrics,
    memory_static_max: 2 * GiB,
    memory_dynamic_max: 2 * GiB,
    memory_dynamic_min: 2 * GiB,
    VCPUs_max: 4,
    VCPUs_at_startup: 4,
    domain_type: 'pv',
  })
  store.update('host', host, { control_domain: dom0, resident_VMs: [dom0] })

  store.create('SM', {
    name_label: 'Local EXT3 VHD',
    type: 'ext',
    vendor: 'Citrix Systems, Inc',
    capabilities: ['SR_PROBE', 'SR_UPDATE', 'VDI_CREATE', 'VDI_DELETE', 'VDI_ATTACH', 'VDI_DETACH', 'VDI_CLONE', 'VDI_SNAPSHOT', 'VDI_RESIZE'],
    features: { SR_PROBE: 1, VDI_CREATE: 1, VDI_DELETE: 1, VDI_SNAPSHOT: 1, VDI_CLONE: 1 },
    driver_filename: '/opt/xensource/sm/EXTSR',
  })
  const sr = store.create('SR', {
    name_label: 'Local storage',
    name_description: 'Simulated sparse-file storage',
    type: 'ext',
    content_type: 'user',
    physical_size: 2048 * GiB,
    other_config: { 'i18n-key': 'local-storage' },
    sm_config: { devserial: 'sim' },
  })
  const pbd = store.create('PBD', { host, SR: sr, device_config: { device: '/dev/sim' }, currently_attached: true })
  store.update('SR', sr, { PBDs: [pbd] })
  // a second SR: disks restored elsewhere than their original SR
  const shared = store.create('SR', {
    name_label: 'Shared storage',
    name_description: 'Simulated sparse-file storage, second SR',
    type: 'nfs',
    content_type: 'user',
    shared: true,
    physical_size: 4096 * GiB,
    other_config: {},
    sm_config: {},
  })
  const sharedPbd = store.create('PBD', { host, SR: shared, device_config: { server: '127.0.0.1', serverpath: '/sim' }, currently_attached: true })
  store.update('SR', shared, { PBDs: [sharedPbd] })
  store.update('host', host, { PBDs: [pbd, sharedPbd] })
  store.update('pool', pool, { default_SR: sr, suspend_image_SR: sr, crash_dump_SR: sr })

  const network = store.create('network', { name_label: 'Pool-wide network associated with eth0', bridge: 'xenbr0' })
  const pifMetrics = store.create('PIF_metrics', { carrier: true, speed: 1000, duplex: true, vendor_name: 'Simulated', last_updated: now })
  const pif = store.create('PIF', {
    device: 'eth0',
    network,
    host,
    MAC: '02:00:00:00:00:01',
    metrics: pifMetrics,
    management: true,
    ip_configuration_mode: 'Static',
    IP: '127.0.0.1',
    netmask: '255.0.0.0',
  })
  store.update('network', network, { PIFs: [pif] })
  store.update('host', host, { PIFs: [pif] })

  model.infra = { pool, host, sr, network }
}

/** A guest VM with its disks (sparse, empty), a CD drive and VIFs. Returns the VM ref and VDI refs. */
export function createGuest(model: PoolModel, spec: GuestSpec): { vm: string; vdis: string[] } {
  const { store, infra } = model
  const running = spec.running ?? true
  const vm = model.createVm({
    name_label: spec.name,
    power_state: running ? 'Running' : 'Halted',
    resident_on: running ? infra.host : NULL_REF,
    domid: running ? 1 : -1,
    other_config: { base_template_name: 'Other install media' },
    HVM_boot_params: { order: 'cd', firmware: 'bios' },
  })
  const vdis = spec.disks.map((disk, index) => {
    const vdi = model.createVdi({ name_label: disk.name, name_description: `disk ${index} of ${spec.name}`, virtual_size: disk.size, SR: infra.sr })
    model.createVbd({
      VM: vm,
      VDI: vdi,
      userdevice: String(index),
      device: `xvd${String.fromCharCode(97 + index)}`,
      bootable: disk.bootable ?? index === 0,
      type: 'Disk',
      mode: 'RW',
      currently_attached: running,
    })
    return vdi
  })
  model.createVbd({ VM: vm, VDI: NULL_REF, userdevice: 'autodetect', type: 'CD', mode: 'RO', bootable: false, currently_attached: running })
  const macs = spec.macs ?? [undefined]
  macs.forEach((mac, index) => {
    model.createVif({ VM: vm, network: infra.network, device: String(index), MAC: mac ?? '', currently_attached: running })
  })
  if (running) {
    const guestMetrics = store.create('VM_guest_metrics', {
      os_version: { name: 'Simulated Linux', distro: 'sim', major: '1' },
      PV_drivers_version: { major: '7', minor: '30', micro: '0', build: '1' },
      PV_drivers_up_to_date: true,
      PV_drivers_detected: true,
      networks: { '0/ip': '192.0.2.10' },
      live: true,
      last_updated: xapiDate(),
    })
    store.update('VM', vm, { guest_metrics: guestMetrics })
    store.edit<string[]>('host', infra.host, 'resident_VMs', refs => [...refs, vm])
  }
  return { vm, vdis }
}

/** vm1 (disks `system` and `[NOBAK] scratch`) and vm2 (one disk), each disk with data written. */
export async function seedDefaultVms(model: PoolModel): Promise<void> {
  const vm1 = createGuest(model, {
    name: 'vm1',
    disks: [
      { name: 'system', size: 64 * MiB },
      { name: '[NOBAK] scratch', size: 16 * MiB },
    ],
  })
  const vm2 = createGuest(model, { name: 'vm2', disks: [{ name: 'data', size: 32 * MiB }], running: false })
  for (const vdi of [...vm1.vdis, ...vm2.vdis]) {
    const uuid = String(model.store.get('VDI', vdi).uuid)
    await model.files.write(uuid, 0, randomBytes(64 * 1024))
    await model.files.write(uuid, 5 * MiB + 4096, randomBytes(256 * 1024))
  }
}
