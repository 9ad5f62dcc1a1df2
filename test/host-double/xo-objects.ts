/**
 * XO objects: xo-server keeps its own view of every XAPI record (`id` = uuid, `type` = XO type,
 * `$pool`/`$poolId` = pool uuid, `_xapiRef`). The host double derives a small subset of that
 * view on demand from the connected clients' caches.
 */
import type { XapiRecord } from '../../src/xapi/client.js'

export interface XoObject {
  readonly id: string
  readonly uuid: string
  readonly type: string
  readonly $pool: string
  readonly $poolId: string
  readonly _xapiRef: string
  readonly name_label?: string
  readonly name_description?: string
  readonly tags?: readonly string[]
  readonly [property: string]: unknown
}

/** the XO type of a XAPI record, e.g. VM → 'VM' | 'VM-snapshot' | 'VM-template' */
export function xoTypeOf(record: XapiRecord): string {
  const type = record.$type
  switch (type.toLowerCase()) {
    case 'vm':
      if (record['is_control_domain'] === true) return 'VM-controller'
      if (record['is_a_snapshot'] === true) return 'VM-snapshot'
      if (record['is_a_template'] === true) return 'VM-template'
      return 'VM'
    case 'vdi':
      return record['is_a_snapshot'] === true ? 'VDI-snapshot' : 'VDI'
    case 'host':
      return 'host'
    case 'pool':
      return 'pool'
    case 'network':
      return 'network'
    case 'sr':
      return 'SR'
    default:
      return type
  }
}

const COPIED_FIELDS = ['name_label', 'name_description', 'tags', 'power_state', 'virtual_size', 'physical_utilisation', 'other_config'] as const

export function toXoObject(record: XapiRecord, poolUuid: string): XoObject {
  const object: Record<string, unknown> = {
    id: record.uuid,
    uuid: record.uuid,
    type: xoTypeOf(record),
    $pool: poolUuid,
    $poolId: poolUuid,
    _xapiRef: record.$ref,
  }
  for (const field of COPIED_FIELDS) {
    if (record[field] !== undefined) object[field] = record[field]
  }
  return object as XoObject
}

export function matchesType(object: XoObject, types: string | readonly string[] | undefined): boolean {
  if (types === undefined) return true
  const list = typeof types === 'string' ? [types] : types
  return list.some(type => type.toLowerCase() === object.type.toLowerCase())
}
