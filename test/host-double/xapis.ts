/**
 * XenServer/XCP-ng pools (`xo-mixins/xen-servers.mjs`): servers added with a URL and
 * credentials, each connected through a real `xen-api` client; objects are looked up by uuid
 * (or opaque ref) across the connected pools.
 */
import { randomUUID } from 'node:crypto'
import { noSuchObject } from './api-errors.js'
import type { XapiRecord } from '../../src/xapi/client.js'
import { createXenApiClient } from './vendor.js'
import type { XenApiClient } from './vendor.js'
import { matchesType, toXoObject } from './xo-objects.js'
import type { XoObject } from './xo-objects.js'

export interface XenServerSpec {
  /** e.g. http://127.0.0.1:4443 */
  readonly host: string
  readonly username: string
  readonly password: string
  readonly label?: string
  readonly allowUnauthorized?: boolean
  readonly readOnly?: boolean
}

/** client options applied to every pool connection (xo-server: `[xapiOptions]`) */
export interface XapiClientOptions {
  /** default 20 ms (xen-api: 200 ms): objects show up in the cache sooner */
  readonly debounce?: number
  /** default 1 s (xen-api: 60 s): events resume sooner after an error */
  readonly eventPollDelay?: number
}

export type XenServerStatus = 'connected' | 'connecting' | 'disconnected'

export interface XenServer {
  readonly id: string
  readonly host: string
  readonly username: string
  readonly label: string
  readonly allowUnauthorized: boolean
  readonly readOnly: boolean
  readonly status: XenServerStatus
  readonly error?: string
  /** uuid of the pool, once connected */
  readonly poolId?: string
}

interface ServerEntry {
  readonly spec: XenServerSpec
  readonly id: string
  client: XenApiClient | undefined
  status: XenServerStatus
  error?: string
}

export type ObjectFilter = ((object: XoObject) => boolean) | Readonly<Record<string, unknown>>

export class Xapis {
  readonly #servers = new Map<string, ServerEntry>()
  readonly #clientOptions: Required<XapiClientOptions>

  constructor({ debounce = 20, eventPollDelay = 1000 }: XapiClientOptions = {}) {
    this.#clientOptions = { debounce, eventPollDelay }
  }

  getServers(): XenServer[] {
    return [...this.#servers.values()].map(entry => {
      const { host, username, label = host, allowUnauthorized = false, readOnly = false } = entry.spec
      const poolId = entry.status === 'connected' ? entry.client?.pool?.uuid : undefined
      return {
        id: entry.id,
        host,
        username,
        label,
        allowUnauthorized,
        readOnly,
        status: entry.status,
        ...(entry.error === undefined ? {} : { error: entry.error }),
        ...(poolId === undefined ? {} : { poolId }),
      }
    })
  }

  /** registers a server without connecting it; returns its id */
  registerServer(spec: XenServerSpec): string {
    const entry: ServerEntry = { spec, id: randomUUID(), client: undefined, status: 'disconnected' }
    this.#servers.set(entry.id, entry)
    return entry.id
  }

  /** registers a server and connects it; resolves with its id once connected (rejects if it cannot) */
  async addServer(spec: XenServerSpec): Promise<string> {
    const id = this.registerServer(spec)
    await this.connectServer(id)
    return id
  }

  async connectServer(id: string): Promise<void> {
    const entry = this.#entry(id)
    if (entry.status !== 'disconnected') return
    entry.status = 'connecting'
    delete entry.error
    const client = await createXenApiClient({
      url: entry.spec.host,
      auth: { user: entry.spec.username, password: entry.spec.password },
      allowUnauthorized: entry.spec.allowUnauthorized ?? true,
      readOnly: entry.spec.readOnly ?? false,
      ...this.#clientOptions,
    })
    entry.client = client
    try {
      await client.connect()
      await client.objectsFetched
      if (entry.client !== client) throw new Error('disconnected while connecting')
      entry.status = 'connected'
    } catch (error) {
      if (entry.client !== client) {
        await client.disconnect().catch(() => {})
        throw error
      }
      entry.status = 'disconnected'
      entry.error = error instanceof Error ? error.message : String(error)
      entry.client = undefined
      await client.disconnect().catch(() => {})
      throw error
    }
  }

  async disconnectServer(id: string): Promise<void> {
    const entry = this.#entry(id)
    const client = entry.client
    entry.client = undefined
    entry.status = 'disconnected'
    if (client !== undefined) await client.disconnect()
  }

  async removeServer(id: string): Promise<void> {
    await this.disconnectServer(id)
    this.#servers.delete(id)
  }

  async close(): Promise<void> {
    await Promise.all([...this.#servers.keys()].map(id => this.disconnectServer(id)))
  }

  /** connected clients by server id */
  getAllXapis(): Record<string, XenApiClient> {
    const result: Record<string, XenApiClient> = {}
    for (const entry of this.#servers.values()) {
      if (entry.status === 'connected' && entry.client !== undefined) result[entry.id] = entry.client
    }
    return result
  }

  /** the connected client of the pool holding this object (uuid, opaque ref or XO object) */
  getXapi(objectOrId: string | { readonly id?: string; readonly $poolId?: string; readonly $pool?: string; readonly uuid?: string }): XenApiClient {
    if (typeof objectOrId !== 'string') {
      const poolId = objectOrId.$poolId ?? objectOrId.$pool
      if (poolId !== undefined) {
        const client = this.#clients().find(client => client.pool?.uuid === poolId)
        if (client !== undefined) return client
      }
      const id = objectOrId.id ?? objectOrId.uuid
      if (id === undefined) throw noSuchObject(String(poolId), 'pool')
      return this.getXapi(id)
    }
    const found = this.#find(objectOrId)
    if (found === undefined) throw noSuchObject(objectOrId)
    return found.client
  }

  /** the XAPI record (from the client's cache) of an object */
  getXapiObject(idOrObject: string | { readonly id: string }, type?: string | readonly string[]): XapiRecord {
    const id = typeof idOrObject === 'string' ? idOrObject : idOrObject.id
    const found = this.#find(id)
    if (found === undefined) throw noSuchObject(id, typeof type === 'string' ? type : undefined)
    if (!matchesType(toXoObject(found.record, found.client.pool.uuid), type)) throw noSuchObject(id, typeof type === 'string' ? type : undefined)
    return found.record
  }

  /** the XO object of a uuid (or opaque ref), optionally of one of `types` */
  getObject(id: string, types?: string | readonly string[]): XoObject {
    const found = this.#find(id)
    const object = found === undefined ? undefined : toXoObject(found.record, found.client.pool.uuid)
    if (object === undefined || !matchesType(object, types)) throw noSuchObject(id, typeof types === 'string' ? types : undefined)
    return object
  }

  getObjects({ filter, limit = Infinity }: { filter?: ObjectFilter; limit?: number } = {}): Record<string, XoObject> {
    const predicate = toPredicate(filter)
    const result: Record<string, XoObject> = {}
    let count = 0
    for (const client of this.#clients()) {
      for (const record of Object.values(client.objects.all)) {
        if (count >= limit) return result
        const object = toXoObject(record, client.pool.uuid)
        if (predicate(object)) {
          result[object.id] = object
          ++count
        }
      }
    }
    return result
  }

  #entry(id: string): ServerEntry {
    const entry = this.#servers.get(id)
    if (entry === undefined) throw noSuchObject(id, 'server')
    return entry
  }

  #clients(): XenApiClient[] {
    return Object.values(this.getAllXapis())
  }

  #find(id: string): { client: XenApiClient; record: XapiRecord } | undefined {
    for (const client of this.#clients()) {
      const record = client.getObject(id, undefined)
      if (record !== undefined) return { client, record }
    }
    return undefined
  }
}

function toPredicate(filter: ObjectFilter | undefined): (object: XoObject) => boolean {
  if (filter === undefined) return () => true
  if (typeof filter === 'function') return filter
  const entries = Object.entries(filter)
  return object => entries.every(([key, value]) => object[key] === value)
}
