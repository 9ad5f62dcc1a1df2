/**
 * The objects of the simulated pool and the operations that keep their cross references
 * consistent (VM.VBDs ↔ VBD.VM, VDI.snapshots ↔ VDI.snapshot_of, SR.VDIs, network.VIFs...).
 */
import { randomBytes } from 'node:crypto'

import { vmAllowedOperations } from './classes/vm.js'
import type { ObjectStore } from './object-store.js'
import type { VdiFiles } from './vdi-files.js'
import { xapiDate } from './xapi-date.js'
import { XapiFault } from './xapi-fault.js'
import { NULL_REF, type Fields } from './xapi-types.js'

/** The infrastructure every VM hangs off; set once the inventory is seeded. */
export interface Infrastructure {
  pool: string
  host: string
  sr: string
  network: string
}

const MAX_VBD_DEVICES = 16
const MAX_VIF_DEVICES = 7

/** A locally administered unicast MAC. */
export function randomMac(): string {
  const bytes = randomBytes(6)
  bytes[0] = (bytes[0]! & 0xfc) | 0x02
  return [...bytes].map(byte => byte.toString(16).padStart(2, '0')).join(':')
}

export const asRefs = (value: unknown): string[] => (Array.isArray(value) ? (value as string[]) : [])
const without = (ref: string) => (refs: string[]) => refs.filter(r => r !== ref)
export const withRef = (ref: string) => (refs: string[]) => [...refs, ref]

/** A VDI whose export ended while its control-domain VBD is still being unplugged. */
interface Releasing {
  /** `VDI.destroy` calls still answered VDI_IN_USE */
  attempts: number
  readonly vbd: string
}

export class PoolModel {
  readonly store: ObjectStore
  readonly files: VdiFiles
  /** PoolQuirks.vdiInUseAfterExport of the pool's profile */
  readonly vdiInUseAfterExport: number
  infra: Infrastructure = { pool: NULL_REF, host: NULL_REF, sr: NULL_REF, network: NULL_REF }
  readonly #releasing = new Map<string, Releasing>()
  /** VDI uuid → snapshots ever taken of it (what they cost the SR, even once destroyed) */
  readonly snapshotsTaken = new Map<string, number>()

  constructor(store: ObjectStore, files: VdiFiles, vdiInUseAfterExport = 0) {
    this.store = store
    this.files = files
    this.vdiInUseAfterExport = vdiInUseAfterExport
  }

  /**
   * An export attaches the VDI to the control domain (a plugged VBD of dom0) for its duration:
   * meanwhile `VDI.destroy` answers VDI_IN_USE. Returns the VBD, for `exportEnded`.
   */
  attachToControlDomain(vdi: string): string {
    const dom0 = String(this.store.get('host', this.infra.host).control_domain)
    // the control domain takes as many as it needs: not bound by a guest's device count
    const userdevice = String(100 + asRefs(this.store.get('VM', dom0).VBDs).length)
    const ref = this.store.create('VBD', {
      VM: dom0,
      VDI: vdi,
      userdevice,
      device: `tapdev${userdevice}`,
      type: 'Disk',
      mode: 'RO',
      empty: false,
      currently_attached: true,
      other_config: { task_id: 'export_raw_vdi' },
    })
    this.store.edit('VM', dom0, 'VBDs', withRef(ref))
    this.store.edit('VDI', vdi, 'VBDs', withRef(ref))
    return ref
  }

  /**
   * The export is over but the disk is not fully unmounted yet (real pools: a few seconds): the
   * next `vdiInUseAfterExport` destroys of the VDI answer VDI_IN_USE, then the VBD goes.
   */
  exportEnded(vdi: string, vbd: string): void {
    const earlier = this.#releasing.get(vdi)
    if (earlier !== undefined && this.store.has(earlier.vbd)) this.destroyVbd(earlier.vbd)
    this.#releasing.delete(vdi)
    if (this.vdiInUseAfterExport > 0 && this.store.has(vdi)) {
      this.#releasing.set(vdi, { attempts: this.vdiInUseAfterExport, vbd })
    } else if (this.store.has(vbd)) {
      this.destroyVbd(vbd)
    }
  }

  /** One destroy attempt of a VDI still being released: answers VDI_IN_USE while attempts remain. */
  assertReleased(vdi: string): void {
    const releasing = this.#releasing.get(vdi)
    if (releasing === undefined) return
    releasing.attempts -= 1
    if (releasing.attempts <= 0) {
      this.#releasing.delete(vdi)
      if (this.store.has(releasing.vbd)) this.destroyVbd(releasing.vbd)
    }
    throw new XapiFault('VDI_IN_USE', [vdi, 'destroy'])
  }

  /** Finds the infrastructure again in a loaded database: the pool, its master, default SR, a network. */
  recoverInfrastructure(): void {
    const [pool] = this.store.refs('pool')
    const [network] = this.store.refs('network')
    if (pool === undefined || network === undefined) throw new Error('the saved pool has no pool or network')
    const { master, default_SR } = this.store.get('pool', pool)
    this.infra = { pool, host: String(master), sr: String(default_SR), network }
  }

  /** Creates a VDI record and its sparse file (`virtual_size` bytes). */
  createVdi(fields: Fields): string {
    const sr = String(fields.SR ?? this.infra.sr)
    this.store.get('SR', sr)
    const size = Number(fields.virtual_size ?? 0)
    if (!Number.isSafeInteger(size) || size < 0) throw new XapiFault('FIELD_TYPE_ERROR', ['virtual_size'])
    const ref = this.store.create('VDI', { ...fields, SR: sr, virtual_size: size, VBDs: [], snapshots: [] })
    const { uuid } = this.store.get('VDI', ref)
    this.store.update('VDI', ref, { location: uuid })
    this.files.createEmpty(String(uuid), size)
    this.store.edit('SR', sr, 'VDIs', withRef(ref))
    return ref
  }

  createVm(fields: Fields): string {
    const metrics = this.store.create('VM_metrics', {
      memory_actual: fields.memory_dynamic_max ?? 1073741824,
      VCPUs_number: fields.VCPUs_at_startup ?? 1,
      install_time: xapiDate(),
      last_updated: xapiDate(),
    })
    const allowed = fields.is_a_snapshot === true ? fields.allowed_operations : vmAllowedOperations(String(fields.power_state ?? 'Halted'))
    return this.store.create('VM', { ...fields, allowed_operations: allowed, metrics, VBDs: [], VIFs: [], VTPMs: [], snapshots: [], consoles: [] })
  }

  createVbd(fields: Fields): string {
    const vm = String(fields.VM)
    this.store.get('VM', vm)
    const vdi = String(fields.VDI ?? NULL_REF)
    if (vdi !== NULL_REF) this.store.get('VDI', vdi)
    let userdevice = String(fields.userdevice ?? 'autodetect')
    const allowed = this.allowedVbdDevices(vm)
    if (userdevice === 'autodetect' || userdevice === '') {
      if (allowed.length === 0) throw new XapiFault('VM_TOO_MANY_VBDS', [vm])
      userdevice = allowed[0]!
    } else if (!allowed.includes(userdevice)) {
      throw new XapiFault('DEVICE_ALREADY_EXISTS', [userdevice])
    }
    const empty = vdi === NULL_REF
    const ref = this.store.create('VBD', { ...fields, VM: vm, VDI: vdi, userdevice, empty })
    this.store.edit('VM', vm, 'VBDs', withRef(ref))
    if (!empty) this.store.edit('VDI', vdi, 'VBDs', withRef(ref))
    return ref
  }

  createVif(fields: Fields): string {
    const vm = String(fields.VM)
    const network = String(fields.network)
    this.store.get('VM', vm)
    this.store.get('network', network)
    const generated = fields.MAC === undefined || fields.MAC === ''
    const ref = this.store.create('VIF', {
      ...fields,
      VM: vm,
      network,
      MAC: generated ? randomMac() : fields.MAC,
      MAC_autogenerated: generated,
    })
    this.store.edit('VM', vm, 'VIFs', withRef(ref))
    this.store.edit('network', network, 'VIFs', withRef(ref))
    return ref
  }

  /** VIF devices still free on a VM, ascending. */
  allowedVifDevices(vm: string): string[] {
    const used = new Set(asRefs(this.store.get('VM', vm).VIFs).map(vif => String(this.store.get('VIF', vif).device)))
    const free: string[] = []
    for (let device = 0; device < MAX_VIF_DEVICES; ++device) if (!used.has(String(device))) free.push(String(device))
    return free
  }

  /** Userdevices still free on a VM, ascending. */
  allowedVbdDevices(vm: string): string[] {
    const used = new Set(asRefs(this.store.get('VM', vm).VBDs).map(vbd => String(this.store.get('VBD', vbd).userdevice)))
    const free: string[] = []
    for (let device = 0; device < MAX_VBD_DEVICES; ++device) if (!used.has(String(device))) free.push(String(device))
    return free
  }

  /** `VDI.resize`: grows a disk (shrinking is refused, as on XAPI). */
  async resizeVdi(vdi: string, size: number): Promise<void> {
    const record = this.store.get('VDI', vdi)
    if (!Number.isSafeInteger(size) || size < Number(record.virtual_size)) {
      throw new XapiFault('VDI_SIZE_TOO_SMALL', [vdi, String(size)])
    }
    await this.files.resize(String(record.uuid), size)
    this.store.update('VDI', vdi, { virtual_size: size })
  }

  /** `VM.destroy`: the VM, its VBDs, VIFs and metrics go; its VDIs stay (as on XAPI). */
  destroyVm(vm: string): void {
    const record = this.store.snapshot('VM', vm)
    if (record.power_state === 'Running' && record.is_control_domain !== true) {
      throw new XapiFault('VM_BAD_POWER_STATE', [vm, 'halted', 'running'])
    }
    for (const vbd of asRefs(record.VBDs)) this.destroyVbd(vbd)
    for (const vif of asRefs(record.VIFs)) this.destroyVif(vif)
    for (const field of ['metrics', 'guest_metrics']) {
      const ref = String(record[field])
      if (this.store.has(ref)) this.store.destroy(this.store.classOf(ref)!, ref)
    }
    const of = String(record.snapshot_of)
    if (this.store.has(of)) this.store.edit('VM', of, 'snapshots', without(vm))
    for (const other of this.store.refs('VM')) {
      if (this.store.get('VM', other).parent === vm) this.store.update('VM', other, { parent: record.parent })
    }
    this.store.destroy('VM', vm)
  }

  /** `VDI.destroy`: refused while attached to a running VM; detached VBDs go with it. */
  destroyVdi(vdi: string): void {
    const record = this.store.snapshot('VDI', vdi)
    this.assertReleased(vdi)
    for (const vbd of asRefs(record.VBDs)) {
      if (this.store.get('VBD', vbd).currently_attached === true) throw new XapiFault('VDI_IN_USE', [vdi, 'destroy'])
    }
    this.forgetVdi(vdi)
  }

  /** Removes a VDI whatever its state (a VDI destroyed behind the client's back). */
  forgetVdi(vdi: string): void {
    const record = this.store.snapshot('VDI', vdi)
    this.#releasing.delete(vdi)
    for (const vbd of asRefs(record.VBDs)) this.destroyVbd(vbd)
    const of = String(record.snapshot_of)
    if (this.store.has(of)) this.store.edit('VDI', of, 'snapshots', without(vdi))
    const sr = String(record.SR)
    if (this.store.has(sr)) this.store.edit('SR', sr, 'VDIs', without(vdi))
    this.store.destroy('VDI', vdi)
    this.files.remove(String(record.uuid))
  }

  /** `VBD.unplug`: the drive is detached (hot-unplug of a running guest's drive is not played). */
  unplugVbd(vbd: string): void {
    const record = this.store.get('VBD', vbd)
    if (record.currently_attached !== true) throw new XapiFault('DEVICE_ALREADY_DETACHED', [vbd])
    const vm = this.store.get('VM', String(record.VM))
    if (vm.is_control_domain !== true && vm.power_state === 'Running') {
      throw new XapiFault('OPERATION_NOT_ALLOWED', ['hot-unplug of a guest drive is not simulated'])
    }
    this.store.update('VBD', vbd, { currently_attached: false })
  }

  /** `VBD.destroy` as a client calls it: refused while the drive is plugged. */
  destroyDetachedVbd(vbd: string): void {
    if (this.store.get('VBD', vbd).currently_attached === true) {
      throw new XapiFault('OPERATION_NOT_ALLOWED', ['VBD currently attached to a running VM'])
    }
    this.destroyVbd(vbd)
  }

  destroyVbd(vbd: string): void {
    const record = this.store.get('VBD', vbd)
    const vm = String(record.VM)
    const vdi = String(record.VDI)
    if (this.store.has(vm)) this.store.edit('VM', vm, 'VBDs', without(vbd))
    if (this.store.has(vdi)) this.store.edit('VDI', vdi, 'VBDs', without(vbd))
    this.store.destroy('VBD', vbd)
  }

  destroyVif(vif: string): void {
    const record = this.store.get('VIF', vif)
    const vm = String(record.VM)
    const network = String(record.network)
    if (this.store.has(vm)) this.store.edit('VM', vm, 'VIFs', without(vif))
    if (this.store.has(network)) this.store.edit('network', network, 'VIFs', without(vif))
    this.store.destroy('VIF', vif)
  }

  /** An SR, its PBDs and every VDI on it. */
  destroySr(sr: string): void {
    const record = this.store.snapshot('SR', sr)
    for (const vdi of asRefs(record.VDIs)) this.forgetVdi(vdi)
    for (const pbd of asRefs(record.PBDs)) {
      const host = String(this.store.get('PBD', pbd).host)
      if (this.store.has(host)) this.store.edit('host', host, 'PBDs', without(pbd))
      this.store.destroy('PBD', pbd)
    }
    this.store.destroy('SR', sr)
  }
}
