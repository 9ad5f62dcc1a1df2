/**
 * What must hold after any fault: a ledger of the restore points the runs committed, each with
 * the sha256 of every guest disk at the time of its run, and the checks that
 * - every restore point on the remote is one the ledger knows, and restores byte-exact;
 * - the job's reference snapshot moved only with a committed restore point;
 * - after a successful run, the reference snapshot is the one the newest VHD of each disk was
 *   exported from (so the next delta chains on the right parent).
 */
import assert from 'node:assert/strict'
import type { JobRunResult } from '../../src/lifecycle/job.js'
import { newestVhd } from '../../src/repository/chain.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import type { Simulator } from '../simulator/index.js'
import { hashRestoredDisk, restorePointsOf } from '../lifecycle/harness.js'

export interface JobSnapshot {
  readonly uuid: string
  readonly exported: boolean
  /** source VDI uuid → snapshot VDI uuid */
  readonly disks: ReadonlyMap<string, string>
}

export interface Attempt {
  readonly result: JobRunResult | undefined
  readonly error: unknown
  /** restore points that appeared during the attempt */
  readonly committed: readonly string[]
  readonly snapshotsBefore: readonly JobSnapshot[]
  readonly snapshotsAfter: readonly JobSnapshot[]
}

export class RestorePointLedger {
  readonly #sim: Simulator
  readonly #vm: string
  readonly #disks: readonly string[]
  readonly #jobId: string
  readonly #handler: () => RemoteHandler
  /** restore point id → source VDI uuid → sha256 of the guest disk when the run began */
  readonly #expected = new Map<string, Map<string, string>>()

  constructor(opts: { sim: Simulator; vm: string; disks: readonly string[]; jobId: string; handler: () => RemoteHandler }) {
    this.#sim = opts.sim
    this.#vm = opts.vm
    this.#disks = opts.disks
    this.#jobId = opts.jobId
    this.#handler = opts.handler
  }

  /** source VDI uuid → sha256 of the guest disk, as restore point `id` must hold it */
  expected(id: string): ReadonlyMap<string, string> {
    const hashes = this.#expected.get(id)
    if (hashes === undefined) throw new Error(`restore point ${id} was not committed by a recorded run`)
    return hashes
  }

  get committed(): readonly string[] {
    return [...this.#expected.keys()]
  }

  /** the remote lost everything (its folder was removed): no restore point is expected any more */
  forgetAll(): void {
    this.#expected.clear()
  }

  async #pointIds(): Promise<string[]> {
    return (await restorePointsOf(this.#handler(), this.#vm, this.#jobId)).map(point => point.id)
  }

  /** the job's snapshots of the VM on the pool, as the simulator holds them */
  jobSnapshots(): JobSnapshot[] {
    const sim = this.#sim
    return sim
      .all('VM')
      .filter(vm => {
        const tags = vm.other_config as Record<string, string>
        return vm.is_a_snapshot === true && tags[BACKUP_KEYS.vm] === this.#vm && tags[BACKUP_KEYS.job] === this.#jobId
      })
      .map(vm => {
        const disks = new Map<string, string>()
        for (const vdi of sim.all('VDI')) {
          if (vdi.is_a_snapshot !== true) continue
          const owners = (vdi.VBDs as string[]).map(vbd => String(sim.record('VBD', vbd).VM))
          if (owners.includes(vm.$ref)) disks.set(sim.record('VDI', String(vdi.snapshot_of)).uuid, vdi.uuid)
        }
        return { uuid: vm.uuid, exported: (vm.other_config as Record<string, string>)[BACKUP_KEYS.exported] === 'true', disks }
      })
      .sort((a, b) => (a.uuid < b.uuid ? -1 : 1))
  }

  /**
   * Runs `run` (which may fail or throw) with the guest disks as they are now; a restore point
   * that appears meanwhile is recorded with their hashes.
   */
  async attempt(run: () => Promise<JobRunResult>): Promise<Attempt> {
    const hashes = new Map<string, string>()
    for (const vdi of this.#disks) hashes.set(vdi, await this.#sim.hashVdi(vdi))
    const before = new Set(await this.#pointIds())
    const snapshotsBefore = this.jobSnapshots()
    let result: JobRunResult | undefined
    let error: unknown
    try {
      result = await run()
    } catch (caught) {
      error = caught
    }
    const committed = (await this.#pointIds()).filter(id => !before.has(id))
    for (const id of committed) this.#expected.set(id, hashes)
    return { result, error, committed, snapshotsBefore, snapshotsAfter: this.jobSnapshots() }
  }

  /** runs `run` and asserts it succeeded and committed exactly one restore point */
  async succeed(run: () => Promise<JobRunResult>): Promise<Attempt> {
    const attempt = await this.attempt(run)
    assert.equal(attempt.error, undefined, String(attempt.error))
    assert.equal(attempt.result?.status, 'success', JSON.stringify(attempt.result?.vms))
    assert.equal(attempt.committed.length, 1, `committed ${attempt.committed.join(', ')}`)
    await this.assertReferenceFollowsChain()
    return attempt
  }

  /**
   * Every restore point on the remote is known and restores as the guest disks were when its run
   * began; `keep`: only the newest ones are kept (retention); `skip`: known to be damaged.
   */
  async assertRestorable(opts: { keep?: number; skip?: readonly string[] } = {}): Promise<void> {
    const handler = this.#handler()
    const points = await restorePointsOf(handler, this.#vm, this.#jobId)
    const ids = points.map(point => point.id)
    for (const id of ids) assert.ok(this.#expected.has(id), `unknown restore point ${id} on the remote`)
    // nothing committed is lost, except the oldest ones past retention
    const committed = this.committed
    const kept = opts.keep === undefined ? committed : committed.slice(-opts.keep)
    for (const id of kept) assert.ok(ids.includes(id), `committed restore point ${id} is gone`)
    for (const point of points) {
      if (opts.skip?.includes(point.id) === true) continue
      for (const vdi of this.#disks) {
        assert.equal(await hashRestoredDisk(handler, point, vdi), this.#expected.get(point.id)!.get(vdi), `${point.id}, disk ${vdi}`)
      }
    }
  }

  /**
   * After a success: one job snapshot, exported, and each disk's newest VHD on the remote was
   * exported from that snapshot's copy of it (footer UUID = snapshot VDI uuid).
   */
  async assertReferenceFollowsChain(): Promise<void> {
    const snapshots = this.jobSnapshots()
    assert.equal(snapshots.length, 1, `job snapshots: ${JSON.stringify(snapshots.map(s => s.uuid))}`)
    const [reference] = snapshots
    assert.ok(reference!.exported, 'the only job snapshot is not marked exported')
    for (const vdi of this.#disks) {
      const newest = await newestVhd(this.#handler(), this.#vm, this.#jobId, vdi)
      assert.equal(newest?.uuid, reference!.disks.get(vdi), `newest VHD of disk ${vdi}`)
    }
  }

  /** the reference snapshot (the exported one) has not moved */
  static assertReferenceUnchanged(attempt: Attempt): void {
    const exported = (list: readonly JobSnapshot[]) => list.filter(s => s.exported).map(s => s.uuid)
    assert.deepEqual(exported(attempt.snapshotsAfter), exported(attempt.snapshotsBefore), 'the reference snapshot moved')
  }
}
