/**
 * Typed views of the XAPI record fields this product reads. xen-api records are untyped: each
 * view is checked at the boundary (`asVm`, `asVdi`...) and throws a clear error when a field the
 * product relies on is missing or has another type, instead of letting `undefined` travel on.
 */
import type { Ref, XapiClient, XapiRecord } from './client.js'
import { NULL_REF } from './client.js'
import { xapiErrorCode } from './xapi-error.js'

export type StringMap = Readonly<Record<string, string>>

export interface VmRecord extends XapiRecord {
  readonly name_label: string
  readonly name_description: string
  readonly power_state: string
  readonly is_a_snapshot: boolean
  readonly is_a_template: boolean
  readonly snapshot_of: Ref
  readonly snapshots: readonly Ref[]
  readonly snapshot_time: string
  readonly VBDs: readonly Ref[]
  readonly VIFs: readonly Ref[]
  readonly other_config: StringMap
  readonly blocked_operations: StringMap
  readonly tags: readonly string[]
}

export interface VbdRecord extends XapiRecord {
  readonly VM: Ref
  readonly VDI: Ref
  readonly type: string
  readonly empty: boolean
  readonly bootable: boolean
  readonly userdevice: string
  readonly mode: string
}

export interface VdiRecord extends XapiRecord {
  readonly name_label: string
  readonly name_description: string
  readonly SR: Ref
  readonly virtual_size: number
  readonly is_a_snapshot: boolean
  readonly snapshot_of: Ref
  readonly other_config: StringMap
  readonly type: string
}

export interface VifRecord extends XapiRecord {
  readonly VM: Ref
  readonly network: Ref
  readonly device: string
  readonly MAC: string
  readonly MTU: number
}

export interface NetworkRecord extends XapiRecord {
  readonly name_label: string
  readonly other_config: StringMap
}

export interface SrRecord extends XapiRecord {
  readonly name_label: string
}

export interface HostRecord extends XapiRecord {
  readonly name_label: string
  readonly software_version: StringMap
}

export interface PoolRecord extends XapiRecord {
  readonly name_label: string
  readonly master: Ref
  readonly default_SR: Ref
}

type FieldKind = 'string' | 'boolean' | 'number' | 'refs' | 'strings' | 'map'

function hasKind(value: unknown, kind: FieldKind): boolean {
  switch (kind) {
    case 'string':
    case 'boolean':
    case 'number':
      return typeof value === kind
    case 'refs':
    case 'strings':
      return Array.isArray(value) && value.every(item => typeof item === 'string')
    case 'map':
      return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every(item => typeof item === 'string')
  }
}

function checker<T extends XapiRecord>(type: string, fields: Record<string, FieldKind>): (record: XapiRecord) => T {
  const isValid = (record: XapiRecord): record is T => {
    for (const [field, kind] of Object.entries(fields)) {
      if (!hasKind(record[field], kind)) {
        return false
      }
    }
    return true
  }
  return record => {
    if (isValid(record)) {
      return record
    }
    const wrong = Object.entries(fields).filter(([field, kind]) => !hasKind(record[field], kind)).map(([field]) => field)
    throw new TypeError(`XAPI ${type} ${record.uuid ?? record.$ref} lacks the expected fields: ${wrong.join(', ')}`)
  }
}

export const asVm = checker<VmRecord>('VM', {
  name_label: 'string',
  name_description: 'string',
  power_state: 'string',
  is_a_snapshot: 'boolean',
  is_a_template: 'boolean',
  snapshot_of: 'string',
  snapshots: 'refs',
  snapshot_time: 'string',
  VBDs: 'refs',
  VIFs: 'refs',
  other_config: 'map',
  blocked_operations: 'map',
  tags: 'strings',
})
export const asVbd = checker<VbdRecord>('VBD', {
  VM: 'string',
  VDI: 'string',
  type: 'string',
  empty: 'boolean',
  bootable: 'boolean',
  userdevice: 'string',
  mode: 'string',
})
export const asVdi = checker<VdiRecord>('VDI', {
  name_label: 'string',
  name_description: 'string',
  SR: 'string',
  virtual_size: 'number',
  is_a_snapshot: 'boolean',
  snapshot_of: 'string',
  other_config: 'map',
  type: 'string',
})
export const asVif = checker<VifRecord>('VIF', { VM: 'string', network: 'string', device: 'string', MAC: 'string', MTU: 'number' })
export const asNetwork = checker<NetworkRecord>('network', { name_label: 'string', other_config: 'map' })
export const asSr = checker<SrRecord>('SR', { name_label: 'string' })
export const asHost = checker<HostRecord>('host', { name_label: 'string', software_version: 'map' })
export const asPool = checker<PoolRecord>('pool', { name_label: 'string', master: 'string', default_SR: 'string' })

/** XAPI answers numbers of its `int` type as strings on some transports */
function normalize(record: XapiRecord): XapiRecord {
  const fixes: Record<string, number> = {}
  for (const field of ['virtual_size', 'MTU']) {
    const value = record[field]
    if (typeof value === 'string' && /^\d+$/.test(value)) {
      fixes[field] = Number(value)
    }
  }
  return Object.keys(fixes).length === 0 ? record : { ...record, ...fixes }
}

/** a fresh copy of a record (`<type>.get_record`), not the event cache that may lag behind a write */
export async function fetchRecord<T extends XapiRecord>(xapi: XapiClient, type: string, ref: Ref, as: (record: XapiRecord) => T): Promise<T> {
  return as(normalize(await xapi.getRecord<XapiRecord>(type, ref)))
}

export async function refOfUuid(xapi: XapiClient, type: string, uuid: string): Promise<Ref> {
  return xapi.call<Ref>(`${type}.get_by_uuid`, uuid)
}

export const fetchVm = (xapi: XapiClient, ref: Ref): Promise<VmRecord> => fetchRecord(xapi, 'VM', ref, asVm)
export const fetchVbd = (xapi: XapiClient, ref: Ref): Promise<VbdRecord> => fetchRecord(xapi, 'VBD', ref, asVbd)
export const fetchVdi = (xapi: XapiClient, ref: Ref): Promise<VdiRecord> => fetchRecord(xapi, 'VDI', ref, asVdi)
export const fetchVif = (xapi: XapiClient, ref: Ref): Promise<VifRecord> => fetchRecord(xapi, 'VIF', ref, asVif)

/** resolves to `undefined` when the object is gone (`HANDLE_INVALID`) */
async function unlessGone<T>(fetch: Promise<T>): Promise<T | undefined> {
  try {
    return await fetch
  } catch (error) {
    if (xapiErrorCode(error) === 'HANDLE_INVALID') {
      return undefined
    }
    throw error
  }
}

/**
 * The disks of a VM: VBDs of type Disk with a VDI, in device order. CD drives, empty drives and
 * drives whose VDI was destroyed are left out.
 */
export async function fetchDisks(xapi: XapiClient, vm: VmRecord): Promise<{ vbd: VbdRecord; vdi: VdiRecord }[]> {
  const disks: { vbd: VbdRecord; vdi: VdiRecord }[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = await unlessGone(fetchVbd(xapi, vbdRef))
    if (vbd === undefined || vbd.type !== 'Disk' || vbd.empty || vbd.VDI === NULL_REF) {
      continue
    }
    const vdi = await unlessGone(fetchVdi(xapi, vbd.VDI))
    if (vdi !== undefined) {
      disks.push({ vbd, vdi })
    }
  }
  return disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
}
