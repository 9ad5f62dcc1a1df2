/**
 * The methods that build a VM as XAPI takes them, each as strict as XAPI:
 *
 * - `VM.create(record)`: the constructor's field set (the VM fields that are read-write or static,
 *   less those the pool's version lacks). A required field missing answers what XAPI's record
 *   unmarshaller answers, `INTERNAL_ERROR [Server_helpers.Dispatcher_FieldNotFound("<field>")]`;
 *   a field of the wrong type `FIELD_TYPE_ERROR [<field>]`; a reference to nothing
 *   `HANDLE_INVALID`; inconsistent memory `MEMORY_CONSTRAINT_VIOLATION`. Any other key is
 *   **ignored, as XAPI ignores it**: `bios_strings`, `VTPMs`, or `NVRAM` on a version without it
 *   are lost, silently, exactly as on a real pool. Creates `other_config.mac_seed` when missing.
 * - `VM.set_bios_strings(vm, strings)` (XenServer 7.3 on): once per VM
 *   (`VM_BIOS_STRINGS_ALREADY_SET`), only the keys XAPI allows (`INVALID_VALUE`), merged over
 *   XAPI's generic strings.
 * - `VTPM.create(vm, is_unique)`, `VTPM.get_contents`, `VTPM.set_contents` (base64 only),
 *   `VTPM.destroy` (XCP-ng 8.3 on: on older profiles the class is absent, every call
 *   `MESSAGE_METHOD_UNKNOWN`); a halted VM only (`VM_BAD_POWER_STATE`), one vTPM per VM.
 * - `VBD.create(record)`: its required fields, the drive types XAPI knows, a CD drive empty
 *   exactly when it has no VDI, a disk drive always with one.
 * - `VDI.create(record)` and `VIF.create(record)`: their required fields; a VIF's MAC empty (XAPI
 *   makes one) or valid (`MAC_INVALID`), its device free on the VM (`DEVICE_ALREADY_EXISTS`).
 */
import { randomUUID } from 'node:crypto'

import { vm as vmClass } from './classes/vm.js'
import type { MethodContext, MethodSpec } from './methods.js'
import { asRefs, withRef, type PoolModel } from './pool-model.js'
import { XapiFault } from './xapi-fault.js'
import { NULL_REF, type Fields } from './xapi-types.js'

const missing = (field: string): XapiFault => new XapiFault('INTERNAL_ERROR', [`Server_helpers.Dispatcher_FieldNotFound("${field}")`])

/** `VM.create`'s fields without a default in XAPI's data model */
export const VM_CREATE_REQUIRED: readonly string[] = [
  'user_version',
  'is_a_template',
  'affinity',
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
  'platform',
  'PCI_bus',
  'other_config',
  'recommendations',
]

/** `VM.create`'s fields with a default (those the pool's version lacks are not taken there) */
export const VM_CREATE_OPTIONAL: readonly string[] = [
  'name_label',
  'name_description',
  'memory_target',
  'HVM_shadow_multiplier',
  'xenstore_data',
  'ha_always_run',
  'ha_restart_priority',
  'tags',
  'blocked_operations',
  'protection_policy',
  'is_snapshot_from_vmpp',
  'snapshot_schedule',
  'is_vmss_snapshot',
  'appliance',
  'start_delay',
  'shutdown_delay',
  'order',
  'suspend_SR',
  'suspend_VDI',
  'power_state',
  'last_boot_CPU_flags',
  'last_booted_record',
  'version',
  'generation_id',
  'hardware_platform_version',
  'has_vendor_device',
  'reference_label',
  'domain_type',
  'NVRAM',
]

const REF_CLASSES: Readonly<Record<string, string>> = {
  affinity: 'host',
  suspend_SR: 'SR',
  suspend_VDI: 'VDI',
}

/** the keys `VM.set_bios_strings` accepts (XAPI's `settable_vm_bios_string_keys`) */
export const SETTABLE_BIOS_STRING_KEYS: readonly string[] = [
  'bios-vendor',
  'bios-version',
  'system-manufacturer',
  'system-product-name',
  'system-version',
  'system-serial-number',
  'enclosure-asset-tag',
  'baseboard-manufacturer',
  'baseboard-product-name',
  'baseboard-version',
  'baseboard-serial-number',
  'baseboard-asset-tag',
  'baseboard-location-in-chassis',
]

/** the strings a VM gets when it has none (XAPI's generic BIOS strings) */
export const GENERIC_BIOS_STRINGS: Readonly<Record<string, string>> = {
  'bios-vendor': 'Xen',
  'bios-version': '',
  'system-manufacturer': 'Xen',
  'system-product-name': 'HVM domU',
  'system-version': '',
  'system-serial-number': '',
  'enclosure-asset-tag': '',
  'baseboard-manufacturer': '',
  'baseboard-product-name': '',
  'baseboard-version': '',
  'baseboard-serial-number': '',
  'baseboard-asset-tag': '',
  'baseboard-location-in-chassis': '',
  'hp-rombios': '',
  'oem-1': 'Xen',
  'oem-2': 'MS_VM_CERT/SHA1/bdbeb6e0a816d43fa6d3fe8aaef04c2bad9d3e3d',
}

const BIOS_STRING_MAX_LENGTH = 512

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(item => typeof item === 'string')
}

/** checks one field against the type of its default in the class spec; returns the wire value */
function typed(field: string, value: unknown, template: unknown): unknown {
  const wrong = (): never => {
    throw new XapiFault('FIELD_TYPE_ERROR', [field])
  }
  if (typeof template === 'number') {
    if (typeof value === 'number' && Number.isFinite(value)) return value
    if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value)
    return wrong()
  }
  if (typeof template === 'string' || typeof template === 'boolean') return typeof value === typeof template ? value : wrong()
  if (Array.isArray(template)) return Array.isArray(value) && value.every(item => typeof item === 'string') ? value : wrong()
  return isStringMap(value) ? value : wrong()
}

function record(value: unknown): Fields {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new XapiFault('FIELD_TYPE_ERROR', ['args'])
  return value as Fields
}

function refArg(value: unknown, name = 'self'): string {
  if (typeof value !== 'string') throw new XapiFault('FIELD_TYPE_ERROR', [name])
  return value
}

/** The fields `VM.create` takes on this pool, from `args`; XAPI's errors for the rest. */
export function vmCreateFields(ctx: MethodContext, args: unknown): Fields {
  const given = record(args)
  const { store } = ctx.model
  const defaults = vmClass.defaults()
  const fields: Fields = {}
  for (const field of VM_CREATE_REQUIRED) {
    if (given[field] === undefined) throw missing(field)
  }
  for (const field of [...VM_CREATE_REQUIRED, ...VM_CREATE_OPTIONAL]) {
    // a field the version lacks is no parameter of its constructor: ignored like any unknown key
    if (given[field] === undefined || !store.hasField('VM', field)) continue
    fields[field] = typed(field, given[field], defaults[field])
  }
  for (const [field, cls] of Object.entries(REF_CLASSES)) {
    const ref = fields[field]
    if (typeof ref === 'string' && ref !== NULL_REF && store.resolve(cls, ref) !== ref) throw new XapiFault('HANDLE_INVALID', [cls, ref])
  }
  for (const field of ['appliance', 'protection_policy', 'snapshot_schedule']) {
    // the pool has no VM appliances, protection policies nor snapshot schedules
    const ref = fields[field]
    if (typeof ref === 'string' && ref !== NULL_REF) throw new XapiFault('HANDLE_INVALID', [field, ref])
  }
  const memory = ['memory_static_min', 'memory_dynamic_min', 'memory_dynamic_max', 'memory_static_max'].map(field => Number(fields[field]))
  if (memory.some((value, index) => index > 0 && value < memory[index - 1]!)) {
    throw new XapiFault('MEMORY_CONSTRAINT_VIOLATION', ['Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max'])
  }
  const vcpus = Number(fields.VCPUs_at_startup)
  if (vcpus < 1 || vcpus > Number(fields.VCPUs_max)) {
    throw new XapiFault('INVALID_VALUE', ['VCPU values must satisfy: 0 < VCPUs_at_startup <= VCPUs_max', String(vcpus)])
  }
  const otherConfig = fields.other_config as Record<string, string>
  if (otherConfig.mac_seed === undefined) fields.other_config = { ...otherConfig, mac_seed: randomUUID() }
  if (fields.power_state !== undefined && fields.power_state !== 'Halted' && fields.power_state !== 'Suspended') {
    throw new XapiFault('VM_BAD_POWER_STATE', ['', 'halted', String(fields.power_state).toLowerCase()])
  }
  return { power_state: 'Halted', ...fields, bios_strings: {} }
}

/** VTPM contents (a secret in XAPI's database, never in a record), by VTPM ref, per pool */
const VTPM_CONTENTS = new WeakMap<PoolModel, Map<string, string>>()

function contentsOf(model: PoolModel): Map<string, string> {
  let map = VTPM_CONTENTS.get(model)
  if (map === undefined) VTPM_CONTENTS.set(model, (map = new Map()))
  return map
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function assertHalted(model: PoolModel, vm: string): void {
  const state = String(model.store.get('VM', vm).power_state)
  if (state !== 'Halted') throw new XapiFault('VM_BAD_POWER_STATE', [vm, 'halted', state.toLowerCase()])
}

/** A vTPM for `vm` (a copy of another's contents for a snapshot). */
export function createVtpm(model: PoolModel, vm: string, isUnique: boolean, contents = ''): string {
  const { store } = model
  if (asRefs(store.get('VM', vm).VTPMs).length > 0) throw new XapiFault('VTPM_MAX_AMOUNT_REACHED', ['1'])
  const ref = store.create('VTPM', { VM: vm, backend: NULL_REF, persistence_backend: 'xapi', is_unique: isUnique, is_protected: false })
  store.edit('VM', vm, 'VTPMs', withRef(ref))
  contentsOf(model).set(ref, contents)
  return ref
}

/** Removes the vTPMs of a destroyed VM (its `VTPMs` field as it was). */
export function destroyVtpms(model: PoolModel, vtpms: unknown): void {
  for (const ref of asRefs(vtpms)) {
    if (!model.store.has(ref)) continue
    contentsOf(model).delete(ref)
    model.store.destroy('VTPM', ref)
  }
}

/** The contents of a vTPM (base64), as `VTPM.get_contents` answers them. */
export function vtpmContents(model: PoolModel, vtpm: string): string {
  model.store.get('VTPM', vtpm)
  return contentsOf(model).get(vtpm) ?? ''
}

export const VM_METHODS: Readonly<Record<string, MethodSpec>> = {
  'VM.create': {
    validate: (ctx, [fields]) => void vmCreateFields(ctx, fields),
    run: (ctx, [fields]) => ctx.model.createVm(vmCreateFields(ctx, fields)),
  },
  'VM.set_bios_strings': {
    run(ctx, [vm, value]) {
      const self = refArg(vm)
      const current = ctx.model.store.get('VM', self).bios_strings as Record<string, string>
      if (Object.keys(current).length > 0) throw new XapiFault('VM_BIOS_STRINGS_ALREADY_SET', [])
      if (!isStringMap(value)) throw new XapiFault('FIELD_TYPE_ERROR', ['value'])
      for (const [key, string] of Object.entries(value)) {
        if (!SETTABLE_BIOS_STRING_KEYS.includes(key)) throw new XapiFault('INVALID_VALUE', [key, 'Unknown key'])
        if (string.length > BIOS_STRING_MAX_LENGTH) throw new XapiFault('INVALID_VALUE', [key, `${key} has length more than ${BIOS_STRING_MAX_LENGTH} characters`])
        if (!/^[\x20-\x7e]*$/.test(string)) throw new XapiFault('INVALID_VALUE', [key, `${key} has non-printable ASCII characters`])
      }
      ctx.model.store.update('VM', self, { bios_strings: { ...GENERIC_BIOS_STRINGS, ...value } })
    },
  },
  'VTPM.create': {
    run(ctx, [vm, isUnique]) {
      const self = refArg(vm, 'vM')
      if (typeof isUnique !== 'boolean') throw new XapiFault('FIELD_TYPE_ERROR', ['is_unique'])
      assertHalted(ctx.model, self)
      return createVtpm(ctx.model, self, isUnique)
    },
  },
  'VTPM.get_contents': { run: (ctx, [vtpm]) => vtpmContents(ctx.model, refArg(vtpm)) },
  'VTPM.set_contents': {
    run(ctx, [vtpm, contents]) {
      const self = refArg(vtpm)
      ctx.model.store.get('VTPM', self)
      if (typeof contents !== 'string') throw new XapiFault('FIELD_TYPE_ERROR', ['contents'])
      if (!BASE64.test(contents)) throw new XapiFault('INTERNAL_ERROR', ['Invalid_argument("Base64.decode")'])
      contentsOf(ctx.model).set(self, contents)
    },
  },
  'VTPM.destroy': {
    run(ctx, [vtpm]) {
      const self = refArg(vtpm)
      const vm = String(ctx.model.store.get('VTPM', self).VM)
      if (ctx.model.store.has(vm)) {
        assertHalted(ctx.model, vm)
        ctx.model.store.edit<string[]>('VM', vm, 'VTPMs', refs => refs.filter(ref => ref !== self))
      }
      contentsOf(ctx.model).delete(self)
      ctx.model.store.destroy('VTPM', self)
    },
  },
  'VBD.create': {
    validate: (_ctx, [fields]) => void vbdCreateFields(fields),
    run: (ctx, [fields]) => ctx.model.createVbd(vbdCreateFields(fields)),
  },
  'VDI.create': {
    validate: (_ctx, [fields]) => void vdiCreateFields(fields),
    run: (ctx, [fields]) => ctx.model.createVdi(vdiCreateFields(fields)),
  },
  'VIF.create': {
    validate: (ctx, [fields]) => void vifCreateFields(ctx.model, fields),
    run: (ctx, [fields]) => ctx.model.createVif(vifCreateFields(ctx.model, fields)),
  },
}

const VDI_CREATE_REQUIRED = ['name_label', 'name_description', 'SR', 'virtual_size', 'type', 'sharable', 'read_only', 'other_config']
const VIF_CREATE_REQUIRED = ['device', 'network', 'VM', 'MAC', 'MTU', 'other_config', 'qos_algorithm_type', 'qos_algorithm_params']
const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/

/** `VDI.create`'s record: its required fields */
export function vdiCreateFields(args: unknown): Fields {
  const { uuid: _ignored, ...given } = record(args)
  for (const field of VDI_CREATE_REQUIRED) {
    if (given[field] === undefined) throw missing(field)
  }
  return given
}

/** `VIF.create`'s record: its required fields, a valid MAC or none, a free device */
export function vifCreateFields(model: PoolModel, args: unknown): Fields {
  const { uuid: _ignored, ...given } = record(args)
  for (const field of VIF_CREATE_REQUIRED) {
    if (given[field] === undefined) throw missing(field)
  }
  if (typeof given.MAC !== 'string' || (given.MAC !== '' && !MAC.test(given.MAC))) throw new XapiFault('MAC_INVALID', [String(given.MAC)])
  const vm = refArg(given.VM, 'VM')
  if (!model.allowedVifDevices(vm).includes(String(given.device))) throw new XapiFault('DEVICE_ALREADY_EXISTS', [String(given.device)])
  return given
}

const VBD_CREATE_REQUIRED = ['VM', 'VDI', 'userdevice', 'bootable', 'mode', 'type', 'empty', 'other_config', 'qos_algorithm_type', 'qos_algorithm_params']
const VBD_TYPES = ['CD', 'Disk', 'Floppy']

/** `VBD.create`'s record: its required fields, a known drive type, emptiness matching the VDI */
export function vbdCreateFields(args: unknown): Fields {
  const { uuid: _ignored, ...given } = record(args)
  for (const field of VBD_CREATE_REQUIRED) {
    if (given[field] === undefined) throw missing(field)
  }
  if (!VBD_TYPES.includes(String(given.type))) throw new XapiFault('FIELD_TYPE_ERROR', ['type'])
  if (given.mode !== 'RO' && given.mode !== 'RW') throw new XapiFault('FIELD_TYPE_ERROR', ['mode'])
  const noVdi = given.VDI === NULL_REF
  if (given.type === 'Disk' && (noVdi || given.empty === true)) throw new XapiFault('VBD_NOT_REMOVABLE_MEDIA', [String(given.VDI)])
  if (given.type !== 'Disk' && given.empty === true && !noVdi) throw new XapiFault('VBD_NOT_EMPTY', [String(given.VDI)])
  if (given.type !== 'Disk' && given.empty !== true && noVdi) throw new XapiFault('VBD_IS_EMPTY', [String(given.VDI)])
  return given
}
