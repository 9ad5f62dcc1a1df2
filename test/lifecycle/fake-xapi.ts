/**
 * A small in-memory stand-in for the parts of a xen-api client the XAPI modules use: records by
 * ref, a log of the calls, and scripted answers per method. Only for unit tests of one module;
 * whole runs go through the simulated pool.
 */
import type { Readable } from 'node:stream'
import type { Ref, XapiClient, XapiHttpResponse, XapiRecord } from '../../src/xapi/client.js'

type Answer = (...args: unknown[]) => unknown

export class FakeXapiError extends Error {
  readonly code: string
  readonly params: readonly string[]
  constructor(code: string, params: readonly string[] = []) {
    super(`${code}(${params.join(', ')})`)
    this.code = code
    this.params = params
  }
}

export class FakeXapi implements XapiClient {
  readonly calls: { method: string; args: unknown[] }[] = []
  readonly #records = new Map<Ref, XapiRecord>()
  readonly #answers = new Map<string, Answer>()
  #counter = 0
  readonly pool: XapiRecord

  constructor() {
    this.pool = this.add('pool', { name_label: 'fake pool' })
  }

  add(type: string, fields: Record<string, unknown>): XapiRecord {
    const n = ++this.#counter
    const uuid = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
    const record: XapiRecord = { ...fields, $ref: `OpaqueRef:${type}-${n}`, $id: uuid, $type: type, uuid }
    this.#records.set(record.$ref, record)
    return record
  }

  update(ref: Ref, change: (record: XapiRecord) => Record<string, unknown>): void {
    const record = this.getObjectByRef(ref)
    this.#records.set(ref, { ...record, ...change(record) })
  }

  answer(method: string, fn: Answer): this {
    this.#answers.set(method, fn)
    return this
  }

  async call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    this.calls.push({ method, args })
    const answer = this.#answers.get(method) ?? this.#generic(method)
    return (await answer(...args)) as T
  }

  callAsync<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    return this.call<T>(method, ...args)
  }

  /** `<type>.get_record`, `add_to_<map>` and `remove_from_<map>` on the stored records */
  #generic(method: string): Answer {
    const [, operation = ''] = method.split('.')
    const mapOperation = /^(add_to|remove_from)_(.+)$/.exec(operation)
    if (mapOperation !== null) {
      const [, kind, field = ''] = mapOperation
      return (ref, key, value) =>
        this.update(String(ref), record => {
          const map = { ...(record[field] as Record<string, string> | undefined) }
          if (kind === 'add_to') {
            if (String(key) in map) throw new FakeXapiError('MAP_DUPLICATE_KEY', [String(key)])
            map[String(key)] = String(value)
          } else {
            delete map[String(key)]
          }
          return { [field]: map }
        })
    }
    if (operation === 'get_record') {
      return ref => this.getObjectByRef(String(ref))
    }
    return () => {
      throw new FakeXapiError('MESSAGE_METHOD_UNKNOWN', [method])
    }
  }

  getObject<T extends XapiRecord = XapiRecord>(refOrUuid: string, defaultValue?: T): T {
    return this.#find(record => record.$ref === refOrUuid || record.uuid === refOrUuid, defaultValue)
  }

  getObjectByRef<T extends XapiRecord = XapiRecord>(ref: Ref, defaultValue?: T): T {
    return this.#find(record => record.$ref === ref, defaultValue)
  }

  getObjectByUuid<T extends XapiRecord = XapiRecord>(uuid: string, defaultValue?: T): T {
    return this.#find(record => record.uuid === uuid, defaultValue)
  }

  #find<T extends XapiRecord>(test: (record: XapiRecord) => boolean, defaultValue?: T): T {
    for (const record of this.#records.values()) {
      if (test(record)) return record as T
    }
    if (defaultValue !== undefined) return defaultValue
    throw new FakeXapiError('HANDLE_INVALID')
  }

  async getRecord<T = Record<string, unknown>>(type: string, ref: Ref): Promise<T> {
    return this.call<T>(`${type}.get_record`, ref)
  }

  async getResource(): Promise<XapiHttpResponse> {
    throw new FakeXapiError('NOT_IMPLEMENTED', ['getResource'])
  }

  async putResource(_body: Readable | Buffer): Promise<unknown> {
    throw new FakeXapiError('NOT_IMPLEMENTED', ['putResource'])
  }

  async barrier(): Promise<void> {}

  get objects(): { all: Record<string, XapiRecord> } {
    return { all: Object.fromEntries(this.#records) }
  }
}
