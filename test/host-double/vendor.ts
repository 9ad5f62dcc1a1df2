/**
 * Narrow, typed views of the untyped libraries the host double uses (xen-api, xo-lib,
 * json-rpc-peer, @xen-orchestra/cron). Each is imported through `importUntyped` so no ambient
 * module declaration is added to the compilation (other parts of the project may declare
 * their own view of the same package).
 */
import type { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { XapiClient, XapiRecord } from '../../src/xapi/client.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

async function importUntyped<T>(specifier: string): Promise<T> {
  return (await import(specifier)) as T
}

// ---------------------------------------------------------------------------- xen-api

/** what the host double uses of a `xen-api` client, on top of the product's `XapiClient` */
export interface XenApiClient extends XapiClient, EventEmitter {
  /** with an explicit `undefined` default: `undefined` when the cache has no such object */
  getObject<T extends XapiRecord = XapiRecord>(refOrUuid: string, defaultValue: undefined): T | undefined
  getObject<T extends XapiRecord = XapiRecord>(refOrUuid: string, defaultValue?: T): T
  readonly status: 'connected' | 'connecting' | 'disconnected'
  readonly objectsFetched: Promise<void>
  readonly objects: { all: Record<string, XapiRecord> }
  connect(): Promise<void>
  disconnect(): Promise<void>
}

export interface XenApiOptions {
  url: string
  auth: { user: string; password: string }
  allowUnauthorized?: boolean
  readOnly?: boolean
  watchEvents?: boolean | string[]
  /** ms to gather events before updating the object cache (xen-api default 200) */
  debounce?: number
  /** ms before polling events again after an error (xen-api default 60 s) */
  eventPollDelay?: number
}

interface XenApiModule {
  createClient(opts: XenApiOptions): XenApiClient
}

export async function createXenApiClient(opts: XenApiOptions): Promise<XenApiClient> {
  const { createClient } = await importUntyped<XenApiModule>('xen-api')
  return createClient(opts)
}

// ---------------------------------------------------------------------------- xo-lib

export interface XoLibClient {
  readonly status: 'open' | 'connecting' | 'closed'
  readonly user: XoLibUser | null
  open(): Promise<void>
  close(): Promise<void>
  signIn(credentials: { email: string; password: string } | { token: string }): Promise<void>
  call(method: string, params?: Record<string, unknown>): Promise<unknown>
}

export interface XoLibUser {
  readonly id: string
  readonly email: string
  readonly permission: string
}

interface XoLibModule {
  default: { default?: new (opts: { url: string }) => XoLibClient } & (new (opts: { url: string }) => XoLibClient)
}

/** a new, not yet opened xo-lib client; `url` is the server root: xo-lib appends `/api/` */
export async function createXoLibClient(url: string): Promise<XoLibClient> {
  const mod = await importUntyped<XoLibModule>('xo-lib')
  // xo-lib is CommonJS compiled by Babel: the class sits on `default.default`
  const Xo = mod.default.default ?? mod.default
  return new Xo({ url })
}

// ---------------------------------------------------------------------------- json-rpc-peer

export interface JsonRpcMessage {
  readonly type: 'request' | 'notification' | 'response' | 'error'
  readonly method: string
  readonly params?: unknown
}

export interface JsonRpcPeer extends Duplex {
  notify(method: string, params?: unknown): Promise<void>
  failPendingRequests(reason: unknown): void
}

export interface JsonRpcErrorInstance extends Error {
  readonly code: number
  readonly data?: unknown
  toJsonRpcError(): { code: number; message: string; data?: unknown }
}

export interface JsonRpcPeerModule {
  Peer: new (onMessage: (message: JsonRpcMessage) => unknown) => JsonRpcPeer
  JsonRpcError: new (message?: string, code?: number, data?: unknown) => JsonRpcErrorInstance
  MethodNotFound: new (method?: string) => JsonRpcErrorInstance
}

export async function loadJsonRpcPeer(): Promise<JsonRpcPeerModule> {
  const mod = await importUntyped<JsonRpcPeerModule & { default: JsonRpcPeerModule }>('json-rpc-peer')
  return { Peer: mod.Peer ?? mod.default.Peer, JsonRpcError: mod.JsonRpcError ?? mod.default.JsonRpcError, MethodNotFound: mod.MethodNotFound ?? mod.default.MethodNotFound }
}

// ---------------------------------------------------------------------------- @xen-orchestra/cron

export interface CronSchedule {
  next(n: number): Date[]
  /** starts running `fn` on this schedule; returns the function that stops it */
  startJob(fn: () => unknown): () => void
}

interface CronModule {
  createSchedule(pattern: string, zone?: string): CronSchedule
}

export async function loadCron(): Promise<CronModule> {
  const mod = await importUntyped<CronModule & { default?: CronModule }>('@xen-orchestra/cron')
  return { createSchedule: mod.createSchedule ?? mod.default!.createSchedule }
}

// ---------------------------------------------------------------------------- xo-remote-parser

export interface ParsedRemoteUrl {
  readonly type: string
  readonly password?: string
  readonly [key: string]: unknown
}

interface RemoteParserModule {
  parse(url: string): ParsedRemoteUrl
  format(remote: ParsedRemoteUrl): string
}

export async function loadRemoteParser(): Promise<RemoteParserModule> {
  const mod = await importUntyped<RemoteParserModule & { default?: RemoteParserModule }>('xo-remote-parser')
  const api = mod.default ?? mod
  return { parse: api.parse, format: api.format }
}

// ---------------------------------------------------------------------------- @xen-orchestra/fs

export interface FsHandler extends RemoteHandler {
  test(): Promise<{ success: boolean; step?: string; file?: string; error?: unknown; writeRate?: number; readRate?: number }>
}

interface FsModule {
  getHandler(remote: { url: string; [key: string]: unknown }, options?: Record<string, unknown>): FsHandler
}

export async function loadFs(): Promise<FsModule> {
  const mod = await importUntyped<FsModule & { default?: FsModule }>('@xen-orchestra/fs')
  return { getHandler: mod.getHandler ?? mod.default!.getHandler }
}
