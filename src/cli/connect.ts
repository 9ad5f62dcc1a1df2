/**
 * Opens what the CLI works on, without xo-server: a remote from its URL (`@xen-orchestra/fs`)
 * and a pool from its URL and credentials (`xen-api`). Both libraries are untyped: they are seen
 * through the narrow interfaces below, checked at run time.
 */
import { stat } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { BACKUP_ROOT } from '../repository/layout.js'

import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'

export interface OpenedRemote {
  readonly handler: RemoteHandler
  close(): Promise<void>
}

interface XoFs {
  getSyncedHandler(remote: { url: string }): Promise<{ value: RemoteHandler; dispose(): Promise<void> }>
}

type HandlerClass = new (remote: { url: string }, opts?: { syncStackTraces?: boolean }) => RemoteHandler

const require = createRequire(import.meta.url)

/**
 * `getSyncedHandler` of `@xen-orchestra/fs`, loading only what the remote's type needs: its
 * index loads every handler (the S3 and Azure SDKs, SMB, probing for mount.cifs) before it can
 * open one, which costs a local remote several times its listing. A local remote gets the same
 * handler class the index would pick (`file` → its `local` handler), constructed and synced the
 * same way; every other type goes through the index.
 */
function isLocal(url: string): boolean {
  return url.startsWith('file:')
}

async function syncedHandler(url: string): Promise<{ value: RemoteHandler; dispose(): Promise<void> }> {
  // a `file:` URL is the one type XO's remote parser reads as `file`
  if (!isLocal(url)) return (require('@xen-orchestra/fs') as XoFs).getSyncedHandler({ url })
  // the package exports only its index: its local handler is loaded by its file's path
  const dist = dirname(require.resolve('@xen-orchestra/fs'))
  const { default: LocalHandler } = require(join(dist, 'local.js')) as { default: HandlerClass }
  // without the caller's stack copied into each file operation (an Error made per operation, a
  // tenth of a listing's time): Node's own async stack traces already say where an error came from
  const handler = new LocalHandler({ url }, { syncStackTraces: false })
  await handler.sync()
  return { value: handler, dispose: () => handler.forget() }
}

async function assertLocalFolder(url: string): Promise<void> {
  const path = fileURLToPath(url)
  const info = await stat(path).catch(() => undefined)
  if (info === undefined || !info.isDirectory()) throw new Error(`the remote folder ${path} does not exist`)
}

/**
 * A connected handler of the remote. The remote must already hold backups (a
 * `xo-vm-backups` folder): a mistyped URL is reported, and nothing is created on it.
 */
export async function openRemote(url: string): Promise<OpenedRemote> {
  // opening a local remote creates its folder: check first
  if (isLocal(url)) await assertLocalFolder(url)
  const { value: handler, dispose } = await syncedHandler(url)
  try {
    const entries = await handler.list('')
    if (!entries.includes(BACKUP_ROOT)) throw new Error(`no backups on this remote (no ${BACKUP_ROOT} folder at its root): check --remote`)
  } catch (error) {
    await dispose()
    throw error
  }
  return { handler, close: dispose }
}

export interface ConnectedXapi extends XapiClient {
  connect(): Promise<void>
  disconnect(): Promise<void>
  readonly objectsFetched: Promise<void>
}

interface XenApi {
  createClient(opts: { url: string; auth: { user: string; password: string }; allowUnauthorized?: boolean; readOnly?: boolean }): ConnectedXapi
}

function isXenApi(value: unknown): value is XenApi {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'createClient') === 'function'
}

export interface PoolAccess {
  readonly url: string
  readonly user: string
  readonly password: string
}

/** a client connected to the pool, its objects fetched; the caller disconnects it */
export async function connectPool({ url, user, password }: PoolAccess): Promise<ConnectedXapi> {
  // a variable specifier: the module has no type declarations, its shape is checked below
  const specifier: string = 'xen-api'
  const xenApi: unknown = await import(specifier)
  if (!isXenApi(xenApi)) throw new Error('xen-api does not export createClient')
  // the pool's certificate is usually self-signed, as xo-server's default allows
  const xapi = xenApi.createClient({ url, auth: { user, password }, allowUnauthorized: true })
  await xapi.connect()
  try {
    await xapi.objectsFetched
  } catch (error) {
    await xapi.disconnect()
    throw error
  }
  return xapi
}
