/**
 * The narrow part of the `xen-api` client (`Xapi`) that this product uses. xo-server's
 * `xo.getXapi()` returns a subclass of it; the CLI and the tests create one with `createClient`.
 * Records are the cached, frozen objects of the client (`$ref`, `$id` = uuid, `$type`).
 */
import type { Readable } from 'node:stream'

export type Ref = string
export const NULL_REF = 'OpaqueRef:NULL'

export interface XapiRecord {
  readonly $ref: Ref
  readonly $id: string
  readonly $type: string
  readonly uuid: string
  readonly [field: string]: unknown
}

/**
 * What `getResource` resolves to: xen-api 4.x gives the HTTP response (its `body` is the stream,
 * `task` settles with the XAPI task); older clients give the stream itself.
 */
export interface XapiHttpResponse {
  readonly body: Readable
  readonly statusCode?: number
  readonly headers?: Record<string, unknown>
  readonly task?: Promise<unknown>
}

export interface XapiClient {
  readonly pool: XapiRecord
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>
  callAsync<T = unknown>(method: string, ...args: unknown[]): Promise<T>
  getObject<T extends XapiRecord = XapiRecord>(refOrUuid: string, defaultValue?: T): T
  getObjectByRef<T extends XapiRecord = XapiRecord>(ref: Ref, defaultValue?: T): T
  getObjectByUuid<T extends XapiRecord = XapiRecord>(uuid: string, defaultValue?: T): T
  getRecord<T = Record<string, unknown>>(type: string, ref: Ref): Promise<T>
  getResource(
    pathname: string,
    opts: { query?: Record<string, string>; task?: Ref | boolean }
  ): Promise<XapiHttpResponse | (Readable & { headers?: Record<string, unknown>; task?: Promise<unknown> })>
  putResource(body: Readable | Buffer, pathname: string, opts: { query?: Record<string, string>; task?: Ref | boolean }): Promise<unknown>
  barrier(ref?: Ref): Promise<void>
  readonly objects: { all: Record<string, XapiRecord> }
}
