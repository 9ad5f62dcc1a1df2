/**
 * Starts a host double: an `XoApp` with the built-in API methods, the given pools and remotes,
 * the plugin package loaded from `pluginDir` (default: the repository root, `dist/index.js`),
 * served over WebSocket JSON-RPC on 127.0.0.1.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { XoApp } from './app.js'
import type { XapiClientOptions } from './xapis.js'
import { builtinMethods } from './builtin-methods.js'
import { createXoLibClient } from './vendor.js'
import type { XoLibUser } from './vendor.js'
import { serveApi } from './ws-server.js'

export interface StartHostOptions {
  /** folder holding package.json + the built entry; default the repo root (dist/index.js) */
  pluginDir?: string
  pools?: { url: string; user: string; password: string }[]
  remotes?: { name: string; url: string }[]
  /** default: a fresh temporary folder, removed on close */
  dataDir?: string
  /** default 0: any free port */
  port?: number
  /**
   * true: configure({}) (or the stored configuration) then load(); false: registered, configured,
   * not loaded. Default: the flag stored in the data dir, true for a first registration.
   */
  autoload?: boolean
  /** `[plugins.<id>]` sections handed to the plugin as `staticConfig` */
  pluginsConfig?: Record<string, Record<string, unknown>>
  /** options of the `xen-api` clients (default: debounce 20 ms, eventPollDelay 1 s) */
  xapiOptions?: XapiClientOptions
}

/** a connected, signed-in xo-lib client */
export interface XoClient {
  readonly user: XoLibUser | null
  call<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>
  close(): Promise<void>
}

export interface HostDouble {
  /** ws://127.0.0.1:PORT/api/ */
  readonly url: string
  /** the `xo` object handed to the plugin */
  readonly app: XoApp
  /** ids of the remotes created from `opts.remotes`, in order */
  readonly remoteIds: string[]
  /** id of the loaded plugin (from its package name) */
  readonly pluginId: string | undefined
  readonly dataDir: string
  addRemote(name: string, url: string): Promise<string>
  setRemote(id: string, patch: { url?: string; enabled?: boolean }): Promise<void>
  signIn(email?: string, password?: string): Promise<XoClient>
  close(): Promise<void>
}

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url))

export async function startHostDouble(opts: StartHostOptions = {}): Promise<HostDouble> {
  const ownsDataDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'xo-host-double-')))
  const app = new XoApp({ dataDir, pluginsConfig: opts.pluginsConfig, xapiOptions: opts.xapiOptions })
  app.addApiMethods(builtinMethods(app))
  const clients = new Set<XoClient>()
  let server: Awaited<ReturnType<typeof serveApi>> | undefined

  let closing: Promise<void> | undefined
  // idempotent: a second call waits for the first
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.all([...clients].map(client => client.close().catch(() => {})))
      await server?.close()
      await app.stop()
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true })
    })())

  try {
    for (const pool of opts.pools ?? []) {
      await app.registerXenServer({ host: pool.url, username: pool.user, password: pool.password })
    }
    const remoteIds: string[] = []
    // the remotes persist in the data dir (xo-server: in redis): a restart finds them, never adds them twice
    for (const remote of opts.remotes ?? []) {
      let id: string | undefined
      for (const known of await app.getAllRemotes()) {
        const full = await app.getRemoteWithCredentials(known.id)
        if (full.name === remote.name && full.url === remote.url) id = full.id
      }
      remoteIds.push(id ?? (await app.createRemote(remote)).id)
    }

    server = await serveApi(app, { port: opts.port ?? 0 })
    const pluginDir = opts.pluginDir ?? REPO_ROOT
    const pluginId = await app.loadPluginPackage(pluginDir, opts.autoload === undefined ? {} : { autoload: opts.autoload })
    app.emit('plugins:registered')
    await app.start()

    const url = server.url
    return {
      url,
      app,
      remoteIds,
      pluginId,
      dataDir,
      async addRemote(name, url) {
        return (await app.createRemote({ name, url })).id
      },
      async setRemote(id, patch) {
        await app.updateRemote(id, patch)
      },
      async signIn(email = 'admin@admin.net', password = 'admin') {
        const xo = await createXoLibClient(url.replace(/\/api\/$/, ''))
        await xo.open()
        try {
          await xo.signIn({ email, password })
        } catch (error) {
          await xo.close()
          throw error
        }
        const client: XoClient = {
          get user() {
            return xo.user
          },
          call: <T>(method: string, params?: Record<string, unknown>) => xo.call(method, params) as Promise<T>,
          close: async () => {
            clients.delete(client)
            await xo.close()
          },
        }
        clients.add(client)
        return client
      },
      close,
    }
  } catch (error) {
    await close().catch(() => {})
    throw error
  }
}
