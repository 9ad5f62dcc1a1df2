/**
 * What the coexistence tests (xo-coexistence*.test.ts) share: a guest VM, runs of our job with
 * deterministic guest writes, hashes of every restore point, the remote's files with their hashes.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, remoteProblems, restorePointsOf, sha256Of } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

export const SEED = 1111
export const JOB = 'job-1'

/** deterministic guest data: `length` bytes from `seed` and `n` */
export function bytes(seed: number, n: number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let offset = 0, i = 0; offset < length; i++) {
    offset += createHash('sha256').update(`${seed}:${n}:${i}`).digest().copy(out, offset)
  }
  return out
}

/** every file of the remote with the sha256 of its content */
export async function snapshotTree(handler: RemoteHandler): Promise<string[]> {
  const lines: string[] = []
  for (const path of await listTree(handler)) {
    if (path.endsWith('.lock') || path.includes('.lock/')) continue // the chain lock folder, between runs
    lines.push(`${path} ${await sha256Of(await handler.createReadStream(path))}`)
  }
  return lines
}

/** problems of severity error (hints left out) */
export async function errors(handler: RemoteHandler, vm: string): Promise<string[]> {
  return (await remoteProblems(handler, vm)).filter(line => line.startsWith('error'))
}

export interface Guest {
  readonly vm: string
  readonly disk: string
  /** restore point id → sha256 of the guest disk when it was taken */
  readonly hashes: Map<string, string>
}

export async function createGuest(harness: Harness, name: string): Promise<Guest> {
  const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'root', size: 16 * MiB }] })
  return { vm, disk: vdis[0]!, hashes: new Map() }
}

/** the guest writes in block `run % 8` (and a second place), then the job runs */
export async function backUp(harness: Harness, guest: Guest, run: number, retention: number, expected?: 'full' | 'delta'): Promise<VmRunResult> {
  const { sim } = harness.pool
  await sim.writeGuest(guest.disk, (run % 8) * BLOCK + 4096, bytes(SEED, run, 48 * 1024))
  await sim.writeGuest(guest.disk, ((run * 3 + 1) % 8) * BLOCK, bytes(SEED + 1, run, 8 * 1024))
  const result = await runJob(harness.job([guest.vm], { retention }), harness.env())
  const vmResult = result.vms[0]!
  assert.equal(vmResult.status, 'success', vmResult.error)
  if (expected !== undefined) {
    assert.deepEqual(vmResult.disks.map(disk => disk.mode), [expected], `run ${run}: ${vmResult.warnings.join('; ')}`)
  }
  guest.hashes.set(vmResult.restorePoint!, await harness.pool.sim.hashVdi(guest.disk))
  return vmResult
}

/** every restore point of the job still on the remote restores to the guest disk at its time */
export async function assertRestorable(harness: Harness, guest: Guest, label: string): Promise<void> {
  const points = await restorePointsOf(harness.handler, guest.vm, JOB)
  assert.ok(points.length > 0, `${label}: no restore point left`)
  for (const point of points) {
    assert.equal(await hashRestoredDisk(harness.handler, point, guest.disk), guest.hashes.get(point.id), `${label}: ${point.id}`)
  }
}

