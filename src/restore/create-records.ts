/**
 * The records XAPI needs to create a VM, a VDI, a VBD and a VIF, filled from the records a restore
 * point stored. A stored field is used when it has the type XAPI expects; otherwise the neutral
 * value below.
 */
import type { Ref } from '../xapi/client.js'
import { NULL_REF } from '../xapi/client.js'
import { isBackupKey } from '../xapi/other-config.js'

type Field = string | number | boolean | readonly string[] | Readonly<Record<string, string>>

const GiB = 1024 ** 3

/** every field `VM.create` requires, with the value a fresh HVM VM would get */
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
  HVM_shadow_multiplier: 1,
  platform: {},
  PCI_bus: '',
  other_config: {},
  recommendations: '',
  xenstore_data: {},
  ha_always_run: false,
  ha_restart_priority: '',
  tags: [],
  blocked_operations: {},
  bios_strings: {},
  has_vendor_device: false,
}

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

/** the VM: named after the restore point's date, tagged, its start blocked until the user allows it */
export function vmCreateRecord(stored: Readonly<Record<string, unknown>>, suffix: string): Record<string, Field> {
  const fields = pick(stored, VM_FIELDS)
  const otherConfig = Object.fromEntries(Object.entries(stringMap(stored.other_config)).filter(([key]) => !isBackupKey(key)))
  const tags = Array.isArray(stored.tags) ? stored.tags.filter(tag => typeof tag === 'string') : []
  return {
    ...fields,
    name_label: `${String(stored.name_label ?? 'VM')} (${suffix})`,
    is_a_template: false,
    affinity: NULL_REF,
    other_config: otherConfig,
    tags: [...new Set([...tags, RESTORED_TAG])],
    blocked_operations: { ...stringMap(stored.blocked_operations), start: START_BLOCKED_REASON },
  }
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

export function vifCreateRecord(stored: Readonly<Record<string, unknown>>, vm: Ref, network: Ref): Record<string, Field> {
  return {
    VM: vm,
    network,
    device: typeof stored.device === 'string' ? stored.device : '0',
    MAC: typeof stored.MAC === 'string' ? stored.MAC : '',
    MTU: typeof stored.MTU === 'number' ? stored.MTU : Number(stored.MTU ?? 1500) || 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  }
}
