/**
 * The records XAPI needs to create a VM, a VDI, a VBD and a VIF, filled from the records a restore
 * point stored. A stored field is used when it has the type XAPI expects; otherwise the neutral
 * value below.
 *
 * `VM.create` gets the fields of XAPI's constructor, as Xen Orchestra sends them: the required
 * ones always, the optional ones (`NVRAM`, `domain_type`, `hardware_platform_version`...) when the
 * restore point has them (a pool whose version lacks one ignores it: the restore then says so).
 * Never `bios_strings` (no constructor field: `VM.set_bios_strings` after) nor
 * `HVM_shadow_multiplier` at its default 1 (a float XenServer 7.2's JSON-RPC mishandles).
 */
import type { Ref } from '../xapi/client.js'
import { NULL_REF } from '../xapi/client.js'
import { isBackupKey } from '../xapi/other-config.js'

type Field = string | number | boolean | readonly string[] | Readonly<Record<string, string>>

const GiB = 1024 ** 3

/** every field `VM.create` requires (and the two names), with the value a fresh HVM VM would get */
const VM_FIELDS: Readonly<Record<string, Field>> = {
  name_label: '',
  name_description: '',
  user_version: 1,
  is_a_template: false,
  affinity: NULL_REF,
  memory_target: GiB,
  memory_static_max: GiB,
  memory_dynamic_max: GiB,
  memory_dynamic_min: GiB,
  memory_static_min: GiB,
  VCPUs_params: {},
  VCPUs_max: 1,
  VCPUs_at_startup: 1,
  actions_after_shutdown: 'destroy',
  actions_after_reboot: 'restart',
  actions_after_crash: 'restart',
  PV_bootloader: '',
  PV_kernel: '',
  PV_ramdisk: '',
  PV_args: '',
  PV_bootloader_args: '',
  PV_legacy_args: '',
  HVM_boot_policy: 'BIOS order',
  HVM_boot_params: { order: 'cd' },
  platform: {},
  PCI_bus: '',
  other_config: {},
  recommendations: '',
}

/** optional `VM.create` fields restored when the restore point has them (with their type) */
const VM_OPTIONAL_FIELDS: Readonly<Record<string, Field>> = {
  xenstore_data: {},
  ha_restart_priority: '',
  tags: [],
  blocked_operations: {},
  has_vendor_device: false,
  HVM_shadow_multiplier: 1,
  start_delay: 0,
  shutdown_delay: 0,
  order: 0,
  version: 0,
  generation_id: '',
  hardware_platform_version: 0,
  reference_label: '',
  domain_type: '',
  NVRAM: {},
}

/** the keys `VM.set_bios_strings` takes (others are the pool's own) */
const SETTABLE_BIOS_STRINGS = new Set([
  'baseboard-asset-tag',
  'baseboard-location-in-chassis',
  'baseboard-manufacturer',
  'baseboard-product-name',
  'baseboard-serial-number',
  'baseboard-version',
  'bios-vendor',
  'bios-version',
  'enclosure-asset-tag',
  'system-manufacturer',
  'system-product-name',
  'system-serial-number',
  'system-version',
])

function sameKind(value: unknown, template: Field): value is Field {
  if (Array.isArray(template)) {
    return Array.isArray(value) && value.every(item => typeof item === 'string')
  }
  if (typeof template === 'object') {
    return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(item => typeof item === 'string')
  }
  // XAPI `int` fields may have been stored as strings
  if (typeof template === 'number' && typeof value === 'string' && /^\d+(\.\d+)?$/.test(value)) {
    return true
  }
  return typeof value === typeof template
}

function pick(stored: Readonly<Record<string, unknown>>, template: Readonly<Record<string, Field>>): Record<string, Field> {
  const fields: Record<string, Field> = {}
  for (const [name, fallback] of Object.entries(template)) {
    const value = stored[name]
    fields[name] = sameKind(value, fallback) ? (typeof fallback === 'number' ? Number(value) : value) : fallback
  }
  return fields
}

/** the optional fields the restore point has, with the type XAPI expects */
function pickPresent(stored: Readonly<Record<string, unknown>>, template: Readonly<Record<string, Field>>): Record<string, Field> {
  const fields: Record<string, Field> = {}
  for (const [name, kind] of Object.entries(template)) {
    const value = stored[name]
    if (value !== undefined && sameKind(value, kind)) fields[name] = typeof kind === 'number' ? Number(value) : value
  }
  return fields
}

function stringMap(value: unknown): Record<string, string> {
  const map: Record<string, string> = {}
  if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      if (typeof item === 'string') map[key] = item
    }
  }
  return map
}

export const RESTORED_TAG = 'restored from backup'
export const START_BLOCKED_REASON = 'restored from backup: check this VM, then allow its start'

interface VmCreateOptions {
  /** new MAC addresses for the interfaces: the VM's `mac_seed` is left for XAPI to make anew */
  readonly newMacAddresses?: boolean
}

/** the VM: named after the restore point's date, tagged, its start blocked until the user allows it */
export function vmCreateRecord(stored: Readonly<Record<string, unknown>>, suffix: string, options: VmCreateOptions = {}): Record<string, Field> {
  const fields = pick(stored, VM_FIELDS)
  const optional = pickPresent(stored, VM_OPTIONAL_FIELDS)
  // the float XenServer 7.2's JSON-RPC mishandles, left out at its default as Xen Orchestra does
  if (optional.HVM_shadow_multiplier === 1) delete optional.HVM_shadow_multiplier
  if (optional.domain_type === '') delete optional.domain_type
  const otherConfig = Object.fromEntries(
    Object.entries(stringMap(stored.other_config)).filter(([key]) => !isBackupKey(key) && !(options.newMacAddresses === true && key === 'mac_seed'))
  )
  const tags = Array.isArray(stored.tags) ? stored.tags.filter(tag => typeof tag === 'string') : []
  return {
    ...optional,
    ...fields,
    name_label: `${String(stored.name_label ?? 'VM')} (${suffix})`,
    is_a_template: false,
    affinity: NULL_REF,
    other_config: otherConfig,
    tags: [...new Set([...tags, RESTORED_TAG])],
    blocked_operations: { ...stringMap(stored.blocked_operations), start: START_BLOCKED_REASON },
  }
}

/**
 * The optional fields of `record` (what `vmCreateRecord` made) that carry state and that a VM
 * record of this pool lacks: the pool's version has no such field and dropped it.
 */
export function fieldsThePoolDropped(record: Readonly<Record<string, unknown>>, created: Readonly<Record<string, unknown>>): string[] {
  const neutral = (field: string, value: unknown): boolean =>
    value === '' ||
    value === 0 ||
    value === false ||
    (Array.isArray(value) && value.length === 0) ||
    (typeof value === 'object' && value !== null && Object.keys(value).length === 0) ||
    // older versions say hvm or pv through HVM_boot_policy
    (field === 'domain_type' && (value === 'hvm' || value === 'pv' || value === 'unspecified'))
  return Object.keys(VM_OPTIONAL_FIELDS).filter(field => field in record && !(field in created) && !neutral(field, record[field]))
}

/** the BIOS strings `VM.set_bios_strings` can give back: its keys, not empty (undefined: none) */
export function settableBiosStrings(stored: unknown): Record<string, string> | undefined {
  const strings = Object.fromEntries(Object.entries(stringMap(stored)).filter(([key, value]) => value !== '' && SETTABLE_BIOS_STRINGS.has(key)))
  return Object.keys(strings).length === 0 ? undefined : strings
}

export function vdiCreateRecord(stored: Readonly<Record<string, unknown>>, sr: Ref, virtualSize: number): Record<string, Field> {
  return {
    name_label: typeof stored.name_label === 'string' ? stored.name_label : '',
    name_description: typeof stored.name_description === 'string' ? stored.name_description : '',
    SR: sr,
    virtual_size: virtualSize,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
    xenstore_data: {},
    sm_config: {},
    tags: [],
  }
}

export function vbdCreateRecord(stored: Readonly<Record<string, unknown>>, vm: Ref, vdi: Ref): Record<string, Field> {
  return {
    VM: vm,
    VDI: vdi,
    userdevice: typeof stored.userdevice === 'string' ? stored.userdevice : 'autodetect',
    bootable: stored.bootable === true,
    mode: stored.mode === 'RO' ? 'RO' : 'RW',
    type: 'Disk',
    unpluggable: stored.unpluggable === true,
    empty: false,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}

/** an empty CD drive */
export function cdDriveCreateRecord(stored: { readonly userdevice: string; readonly bootable: boolean }, vm: Ref): Record<string, Field> {
  return {
    VM: vm,
    VDI: NULL_REF,
    userdevice: stored.userdevice,
    bootable: stored.bootable,
    mode: 'RO',
    type: 'CD',
    unpluggable: true,
    empty: true,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}

/** a VIF; with `newMac`, XAPI makes its MAC anew */
export function vifCreateRecord(stored: Readonly<Record<string, unknown>>, vm: Ref, network: Ref, newMac = false): Record<string, Field> {
  return {
    VM: vm,
    network,
    device: typeof stored.device === 'string' ? stored.device : '0',
    MAC: !newMac && typeof stored.MAC === 'string' ? stored.MAC : '',
    MTU: typeof stored.MTU === 'number' ? stored.MTU : Number(stored.MTU ?? 1500) || 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}
