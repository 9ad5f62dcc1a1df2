/**
 * The world most API tests need: a simulated pool, the host double with the plugin loaded, one
 * file remote in a temporary folder, and an admin signed in through xo-lib.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHostDouble } from './host.js'
import type { HostDouble, XoClient } from './host.js'
import { startSimulatedPool } from './pool.js'
import type { SimulatedPool } from './pool.js'

export interface PluginWorld {
  readonly pool: SimulatedPool
  readonly host: HostDouble
  readonly admin: XoClient
  /** the remote's folder, and its id in the host double */
  readonly remoteDir: string
  readonly remote: string
  close(): Promise<void>
}

/** `name` names the remote's temporary folder */
export async function startPluginWorld(name: string): Promise<PluginWorld> {
  const pool = await startSimulatedPool()
  const remoteDir = await mkdtemp(join(tmpdir(), `${name}-remote-`))
  const host = await startHostDouble({ pools: [pool], remotes: [{ name: 'nas', url: `file://${remoteDir}` }] })
  const admin = await host.signIn()
  return {
    pool,
    host,
    admin,
    remoteDir,
    remote: host.remoteIds[0]!,
    async close() {
      await host.close()
      await pool.close()
      await rm(remoteDir, { recursive: true, force: true })
    },
  }
}

/** polls `probe` until it gives a value (a test's wait for something asynchronous, never a time bound on the product) */
export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}
