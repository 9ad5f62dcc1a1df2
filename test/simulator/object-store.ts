/**
 * The pool database: objects by reference, a uuid index and the event log that `event.from`
 * serves. Every write emits an event carrying a snapshot of the object after the write.
 */
import { randomUUID } from 'node:crypto'

import { classSpec } from './classes/index.js'
import { handleInvalid, XapiFault } from './xapi-fault.js'
import type { Fields } from './xapi-types.js'

export type Operation = 'add' | 'mod' | 'del'

export interface XapiEvent {
  readonly id: number
  /** Lowercase class name, as XAPI sends it. */
  readonly class: string
  readonly ref: string
  readonly operation: Operation
  readonly snapshot: Fields
}

/** An object as saved to disk. */
export interface PersistedObject {
  readonly cls: string
  readonly ref: string
  readonly fields: Fields
}

interface StoredObject {
  readonly cls: string
  readonly ref: string
  fields: Fields
}

/** Oldest events dropped past this many; a token older than the log answers EVENTS_LOST. */
const MAX_EVENTS = 100_000

const clone = (fields: Fields): Fields => structuredClone(fields)

export class ObjectStore {
  /** class wire name → fields this pool's version lacks (see profiles.ts) */
  readonly #absentFields: ReadonlyMap<string, ReadonlySet<string>>
  readonly #objects = new Map<string, StoredObject>()
  readonly #byUuid = new Map<string, string>()
  #events: XapiEvent[] = []
  #lastEventId = 0
  readonly #waiters = new Set<() => void>()
  readonly #listeners = new Set<() => void>()

  constructor(absentFields: Readonly<Record<string, readonly string[]>> = {}) {
    this.#absentFields = new Map(Object.entries(absentFields).map(([cls, fields]) => [cls.toLowerCase(), new Set(fields)]))
  }

  /** The field names records of `cls` carry on this pool (the class's, less those its version lacks). */
  fieldNames(cls: string): string[] {
    const spec = classSpec(cls)
    if (spec === undefined) return []
    const absent = this.#absentFields.get(spec.name.toLowerCase())
    return Object.keys(spec.defaults()).filter(field => absent?.has(field) !== true)
  }

  hasField(cls: string, field: string): boolean {
    return this.fieldNames(cls).includes(field)
  }

  /** Creates an object of `cls` from the class defaults overlaid with the known keys of `fields`. */
  create(cls: string, fields: Fields = {}, ref: string = `OpaqueRef:${randomUUID()}`): string {
    const spec = classSpec(cls)
    if (spec === undefined) throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [`${cls}.create`])
    const record = spec.defaults()
    for (const field of this.#absentFields.get(spec.name.toLowerCase()) ?? []) delete record[field]
    for (const key of Object.keys(record)) {
      if (key in fields && fields[key] !== undefined) record[key] = clone({ v: fields[key] }).v
    }
    if (typeof record.uuid !== 'string' || record.uuid === '' || this.#byUuid.has(record.uuid)) record.uuid = randomUUID()
    const object: StoredObject = { cls: spec.name, ref, fields: record }
    this.#objects.set(ref, object)
    this.#byUuid.set(record.uuid as string, ref)
    this.#emit(object, 'add')
    return ref
  }

  has(ref: string): boolean {
    return this.#objects.has(ref)
  }

  classOf(ref: string): string | undefined {
    return this.#objects.get(ref)?.cls
  }

  /** The live fields of an object of `cls` (throws HANDLE_INVALID). Callers must not mutate them. */
  get(cls: string, ref: string): Readonly<Fields> {
    return this.#object(cls, ref).fields
  }

  /** A ref from a ref or a uuid of an object of `cls`, or undefined. */
  resolve(cls: string, refOrUuid: string): string | undefined {
    const ref = this.#objects.has(refOrUuid) ? refOrUuid : this.#byUuid.get(refOrUuid)
    if (ref === undefined) return undefined
    return this.#objects.get(ref)?.cls.toLowerCase() === cls.toLowerCase() ? ref : undefined
  }

  byUuid(cls: string, uuid: string): string {
    const ref = this.#byUuid.get(uuid)
    if (ref === undefined || this.#objects.get(ref)?.cls.toLowerCase() !== cls.toLowerCase()) {
      throw new XapiFault('UUID_INVALID', [cls, uuid])
    }
    return ref
  }

  refs(cls: string): string[] {
    const lc = cls.toLowerCase()
    const refs: string[] = []
    for (const object of this.#objects.values()) if (object.cls.toLowerCase() === lc) refs.push(object.ref)
    return refs
  }

  /** A detached copy of the fields. */
  snapshot(cls: string, ref: string): Fields {
    return clone(this.#object(cls, ref).fields)
  }

  /** Applies `patch` (known fields only) and emits a `mod` event. */
  update(cls: string, ref: string, patch: Fields): void {
    const object = this.#object(cls, ref)
    const next = { ...object.fields }
    for (const [key, value] of Object.entries(patch)) {
      if (!(key in next) || (key === 'uuid' && value !== next.uuid)) {
        throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [`${object.cls}.set_${key}`])
      }
      next[key] = clone({ v: value }).v
    }
    object.fields = next
    this.#emit(object, 'mod')
  }

  /** Edits one field through a function of its current value. */
  edit<T>(cls: string, ref: string, field: string, fn: (value: T) => T): void {
    const current = this.#object(cls, ref).fields[field] as T
    this.update(cls, ref, { [field]: fn(clone({ v: current }).v as T) })
  }

  destroy(cls: string, ref: string): void {
    const object = this.#object(cls, ref)
    this.#objects.delete(ref)
    this.#byUuid.delete(object.fields.uuid as string)
    this.#emit(object, 'del')
  }

  /** Every object of the classes not excluded, as plain data (for saving the pool). */
  dump(exclude: readonly string[] = []): PersistedObject[] {
    const skip = new Set(exclude.map(cls => cls.toLowerCase()))
    return [...this.#objects.values()]
      .filter(object => !skip.has(object.cls.toLowerCase()))
      .map(object => ({ cls: object.cls, ref: object.ref, fields: clone(object.fields) }))
  }

  /** Calls `listener` after every change (not for reads). */
  onChange(listener: () => void): void {
    this.#listeners.add(listener)
  }

  /** Re-emits a `mod` event for an object (what `event.inject` does); returns the event's token. */
  touch(cls: string, ref: string): string {
    this.#emit(this.#object(cls, ref), 'mod')
    return this.token
  }

  /** The token naming the newest event. */
  get token(): string {
    return formatToken(this.#lastEventId)
  }

  /**
   * Events after `token` for `classes` (lowercase or wire names; `*` for all).
   * Throws EVENTS_LOST when the log no longer reaches back to the token.
   */
  eventsSince(token: string, classes: readonly string[]): { events: XapiEvent[]; token: string } {
    const since = parseToken(token)
    const first = this.#events[0]
    if (first !== undefined && since < first.id - 1) throw new XapiFault('EVENTS_LOST', [])
    const all = classes.includes('*')
    const wanted = new Set(classes.map(cls => cls.toLowerCase()))
    const events = this.#events.filter(event => event.id > since && (all || wanted.has(event.class)))
    return { events, token: this.token }
  }

  /** Counts of live objects for the given classes, keyed by lowercase class name. */
  validRefCounts(classes: readonly string[]): Record<string, number> {
    const counts: Record<string, number> = {}
    const wanted = classes.includes('*') ? [...new Set([...this.#objects.values()].map(o => o.cls))] : classes
    for (const cls of wanted) counts[cls.toLowerCase()] = this.refs(cls).length
    return counts
  }

  /** Resolves at the next event, or after `ms`, or when `signal` aborts. */
  waitForEvent(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#waiters.add(done)
      signal?.addEventListener('abort', done)
    })
  }

  #object(cls: string, ref: string): StoredObject {
    const object = this.#objects.get(ref)
    if (object === undefined || object.cls.toLowerCase() !== cls.toLowerCase()) throw handleInvalid(cls, ref)
    return object
  }

  #emit(object: StoredObject, operation: Operation): void {
    const event: XapiEvent = {
      id: ++this.#lastEventId,
      class: object.cls.toLowerCase(),
      ref: object.ref,
      operation,
      snapshot: clone(object.fields),
    }
    this.#events.push(event)
    if (this.#events.length > MAX_EVENTS) this.#events = this.#events.slice(-MAX_EVENTS / 2)
    for (const waiter of [...this.#waiters]) waiter()
    for (const listener of this.#listeners) listener()
  }
}

function formatToken(id: number): string {
  return String(id).padStart(16, '0')
}

function parseToken(token: string): number {
  if (token === '') return 0
  const id = Number.parseInt(token, 10)
  if (!Number.isSafeInteger(id) || id < 0) throw new XapiFault('EVENT_FROM_TOKEN_PARSE_FAILURE', [token])
  return id
}
