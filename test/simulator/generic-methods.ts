/**
 * The methods XAPI offers on every class: record and field getters, setters, map and set editors.
 * `<class>.<op>(ref, ...)`; answers MESSAGE_METHOD_UNKNOWN for a field the class lacks.
 */
import { CLASSES } from './classes/index.js'
import type { ObjectStore } from './object-store.js'
import { XapiFault } from './xapi-fault.js'
import type { Fields } from './xapi-types.js'

const str = (value: unknown, name: string): string => {
  if (typeof value !== 'string') throw new XapiFault('FIELD_TYPE_ERROR', [name])
  return value
}

function fieldOf(store: ObjectStore, cls: string, method: string, field: string): string {
  if (!store.hasField(cls, field)) throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [method])
  return field
}

/** Runs a generic method, or returns `undefined` when `op` is not one. */
export function genericCall(store: ObjectStore, cls: string, op: string, args: readonly unknown[]): { value: unknown } | undefined {
  const method = `${cls}.${op}`
  if (op === 'get_all_records') {
    const records: Record<string, Fields> = {}
    for (const ref of store.refs(cls)) records[ref] = store.snapshot(cls, ref)
    return { value: records }
  }
  if (op === 'get_all') return { value: store.refs(cls) }
  if (op === 'get_record') return { value: store.snapshot(cls, str(args[0], 'self')) }
  if (op === 'get_by_uuid') return { value: store.byUuid(cls, str(args[0], 'uuid')) }
  if (op === 'get_by_name_label') {
    const label = str(args[0], 'label')
    return { value: store.refs(cls).filter(ref => store.get(cls, ref).name_label === label) }
  }

  let match: RegExpExecArray | null
  if ((match = /^get_(.+)$/.exec(op)) !== null) {
    const field = fieldOf(store, cls, method, match[1]!)
    return { value: store.snapshot(cls, str(args[0], 'self'))[field] }
  }
  if ((match = /^set_(.+)$/.exec(op)) !== null) {
    const field = fieldOf(store, cls, method, match[1]!)
    store.update(cls, str(args[0], 'self'), { [field]: args[1] })
    return { value: undefined }
  }
  if ((match = /^add_to_(.+)$/.exec(op)) !== null) {
    const field = fieldOf(store, cls, method, match[1]!)
    const ref = str(args[0], 'self')
    const key = str(args[1], 'key')
    store.edit<Record<string, unknown>>(cls, ref, field, map => {
      if (Object.hasOwn(map, key)) throw new XapiFault('MAP_DUPLICATE_KEY', [cls, field, ref, key])
      return { ...map, [key]: args[2] }
    })
    return { value: undefined }
  }
  if ((match = /^remove_from_(.+)$/.exec(op)) !== null) {
    const field = fieldOf(store, cls, method, match[1]!)
    const key = str(args[1], 'key')
    store.edit<Record<string, unknown>>(cls, str(args[0], 'self'), field, map => {
      const { [key]: _removed, ...rest } = map
      return rest
    })
    return { value: undefined }
  }
  if ((match = /^(add|remove)_(.+)$/.exec(op)) !== null) {
    const field = fieldOf(store, cls, method, match[2]!)
    const value = args[1]
    store.edit<unknown[]>(cls, str(args[0], 'self'), field, set => {
      if (!Array.isArray(set)) throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [method])
      const rest = set.filter(item => item !== value)
      return match![1] === 'add' ? [...rest, value] : rest
    })
    return { value: undefined }
  }
  return undefined
}

/** Names of the generic methods of every class served, for `system.listMethods`. */
export function genericMethodNames(store: ObjectStore, served: (cls: string) => boolean): string[] {
  const names: string[] = []
  for (const spec of CLASSES.values()) {
    if (!served(spec.name)) continue
    names.push(`${spec.name}.get_all_records`, `${spec.name}.get_all`, `${spec.name}.get_record`, `${spec.name}.get_by_uuid`)
    for (const field of store.fieldNames(spec.name)) names.push(`${spec.name}.get_${field}`)
  }
  return names
}
