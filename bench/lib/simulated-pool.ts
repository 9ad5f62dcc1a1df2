/**
 * The simulated pool (test/helpers/pool.ts) as the benchmark cases use it, loaded when present
 * (a published package has no tests: the cases that need it are then skipped).
 */
import type { PoolAccess } from '../tasks/protocol.js'
import type { Layer } from './fixtures.js'
import { loadOptional, type Loaded } from './optional.js'

export interface Sim {
  createVm(spec: { name: string; disks: { name: string; size: number }[] }): { vm: string; vdis: string[] }
  writeGuest(vdiUuid: string, offset: number, data: Buffer): Promise<void>
  destroyVm(uuid: string): void
  all(cls: string): { uuid: string; is_a_snapshot?: unknown; other_config?: unknown }[]
  bytesOnSr(vdiUuid: string): Promise<number>
}

export interface Pool extends PoolAccess {
  readonly sim: Sim
  close(): Promise<void>
}

export type StartSimulatedPool = (opts: { dataDir?: string; inventory?: 'default' | 'empty'; profile?: string }) => Promise<Pool>

export function loadSimulatedPool(): Promise<Loaded<StartSimulatedPool>> {
  return loadOptional<StartSimulatedPool>('test/helpers/pool.ts', 'startSimulatedPool')
}

/** the guest data of the `n`th write of a case seeded `seed` */
export const guestLayer = (seed: number, n: number): Layer => ({ stem: `layer-${n}`, uuid: Buffer.alloc(16), timestampMs: 0, blocks: [], contentSeed: (seed * 31 + n) >>> 0 })
