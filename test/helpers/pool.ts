/**
 * Starts a simulated XenServer pool for a test and connects the real `xen-api` client to it.
 *
 *   const pool = await startSimulatedPool()
 *   const xapi = await connectXapi(pool)
 *   ...
 *   await xapi.disconnect()
 *   await pool.close()
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import type { XapiClient } from '../../src/xapi/client.js'
import { Simulator } from '../simulator/index.js'
import type { PoolQuirks, ProfileName } from '../simulator/profiles.js'

export interface StartPoolOptions {
  /** Default: a fresh temporary folder, removed by close(). */
  dataDir?: string
  /** Default 'root'. */
  user?: string
  /** Default 'secret'. */
  password?: string
  /** The version the pool plays (test/simulator/profiles.ts). Default: the oldest supported, XenServer 6.5. */
  profile?: ProfileName
  /** Quirks made to last longer than the profile's own. */
  quirks?: Partial<PoolQuirks>
  /** Default 'default': vm1 (system, [NOBAK] scratch) and vm2 (one disk), with data written. */
  inventory?: 'default' | 'empty'
  /** 0 (default) = any free port. */
  port?: number
}

export interface SimulatedPool {
  /** http://127.0.0.1:PORT */
  readonly url: string
  readonly user: string
  readonly password: string
  readonly dataDir: string
  readonly sim: Simulator
  close(): Promise<void>
}

/** The connected `xen-api` client: the product's XapiClient plus connection control. */
export interface Xapi extends XapiClient {
  readonly status: 'connected' | 'connecting' | 'disconnected'
  readonly objectsFetched: Promise<void>
  readonly sessionId: string
  connect(): Promise<void>
  disconnect(): Promise<void>
  watchTask<T = unknown>(ref: string): Promise<T>
}

interface XenApiModule {
  createClient(opts: {
    url: string
    auth: { user: string; password: string }
    allowUnauthorized?: boolean
    debounce?: number
    eventPollDelay?: number
    readOnly?: boolean
  }): Xapi
}

/** A module without type declarations, viewed through the interface given (no ambient declaration). */
async function importUntyped<T>(specifier: string): Promise<T> {
  return (await import(specifier)) as T
}

export async function startSimulatedPool(opts: StartPoolOptions = {}): Promise<SimulatedPool> {
  const ownDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'simulated-pool-')))
  try {
    const sim = await Simulator.start({ ...opts, dataDir })
    return {
      url: sim.url,
      user: sim.user,
      password: sim.password,
      dataDir,
      sim,
      async close() {
        await sim.close()
        if (ownDir) await rm(dataDir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    if (ownDir) await rm(dataDir, { recursive: true, force: true })
    throw error
  }
}

/**
 * A real `xen-api` client connected to the pool, its object cache filled. The caller disconnects
 * it. To keep tests fast, the event loop polls every 20 ms (client default: 200 ms) and retries
 * 1 s after an event error (client default: 60 s).
 */
export async function connectXapi(pool: Pick<SimulatedPool, 'url' | 'user' | 'password'>): Promise<Xapi> {
  const { createClient } = await importUntyped<XenApiModule>('xen-api')
  const xapi = createClient({
    url: pool.url,
    auth: { user: pool.user, password: pool.password },
    allowUnauthorized: true,
    debounce: 20,
    eventPollDelay: 1000,
  })
  await xapi.connect()
  await xapi.objectsFetched
  return xapi
}
