/**
 * Xen Orchestra's own backup code on our remote, proven with XO's code
 * (`@xen-orchestra/backup-archive` 1.1.2, `VmBackupDirectory.cleanVm`; test/helpers/xo-backup-archive.ts):
 *
 * - on a healthy remote XO's clean-up warns about nothing and changes nothing;
 * - XO's delete of a restore point (its `.json`, then the clean-up with `remove`, no merge), and
 *   XO's clean-up with merges (as an XO incremental job of the same VM runs it before each run)
 *   leave our chain consistent: our next run is a delta, `verify` finds no error, every remaining
 *   restore point restores byte-exact;
 * - after a crash in our merge, XO's clean-up does not fail, and our next run finishes the merge
 *   (also from a state file named as earlier versions named it);
 * - an interrupted merge of XO's own in our chain does not make our runs fail;
 * - an XO full backup (XVA) and another XO job's chain in the same VM folder: both tools keep
 *   working and neither deletes the other's files.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { metadataPath, vmDir } from '../../src/repository/layout.js'
import { listMergeStates } from '../../src/repository/merge/state.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { BLOCK, hashRestoredDisk, listTree, MiB, remoteProblems, restorePointsOf, sha256Of, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { runMergeChild } from '../repository/merge-crash-runner.js'
import { xoCleanVm, xoDeleteRestorePoint } from '../helpers/xo-backup-archive.js'

const SEED = 1111
/** the changes of our merge (test/repository/merge-crash-child.ts) to die before */
const KILL_POINTS = (process.env['COEXIST_KILL_POINTS'] ?? '3,6').split(',').map(Number)
const JOB = 'job-1'

/** deterministic guest data: `length` bytes from `seed` and `n` */
function bytes(seed: number, n: number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let offset = 0, i = 0; offset < length; i++) {
    offset += createHash('sha256').update(`${seed}:${n}:${i}`).digest().copy(out, offset)
  }
  return out
}

/** every file of the remote with the sha256 of its content */
async function snapshotTree(handler: RemoteHandler): Promise<string[]> {
  const lines: string[] = []
  for (const path of await listTree(handler)) {
    if (path.endsWith('.lock') || path.includes('.lock/')) continue // the chain lock folder, between runs
    lines.push(`${path} ${await sha256Of(await handler.createReadStream(path))}`)
  }
  return lines
}

/** problems of severity error (hints left out) */
async function errors(handler: RemoteHandler, vm: string): Promise<string[]> {
  return (await remoteProblems(handler, vm)).filter(line => line.startsWith('error'))
}

interface Guest {
  readonly vm: string
  readonly disk: string
  /** restore point id → sha256 of the guest disk when it was taken */
  readonly hashes: Map<string, string>
}

async function createGuest(harness: Harness, name: string): Promise<Guest> {
  const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'root', size: 16 * MiB }] })
  return { vm, disk: vdis[0]!, hashes: new Map() }
}

/** the guest writes in block `run % 8` (and a second place), then the job runs */
async function backUp(harness: Harness, guest: Guest, run: number, retention: number, expected?: 'full' | 'delta'): Promise<VmRunResult> {
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
async function assertRestorable(harness: Harness, guest: Guest, label: string): Promise<void> {
  const points = await restorePointsOf(harness.handler, guest.vm, JOB)
  assert.ok(points.length > 0, `${label}: no restore point left`)
  for (const point of points) {
    assert.equal(await hashRestoredDisk(harness.handler, point, guest.disk), guest.hashes.get(point.id), `${label}: ${point.id}`)
  }
}

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`coexistence with Xen Orchestra's own backup code [${remote}] (seed ${SEED})`, function () {
    let harness: Harness

    beforeEach(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
    })

    afterEach(async function () {
      await harness?.close()
    })

    it("XO's clean-up of a healthy remote warns about nothing and changes nothing", async function () {
      const guest = await createGuest(harness, 'healthy')
      for (let run = 0; run < 5; run++) await backUp(harness, guest, run, 3, run === 0 ? 'full' : 'delta')
      const before = await snapshotTree(harness.handler)

      const asDelete = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: false })
      assert.deepEqual(asDelete.warnings, [], 'clean-up with remove')
      const asJob = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
      assert.deepEqual(asJob.warnings, [], 'clean-up with remove and merge')
      assert.equal(asJob.merge, false, 'nothing to merge')

      assert.deepEqual(await snapshotTree(harness.handler), before)
      await assertRestorable(harness, guest, 'after the clean-ups')
    })

    it("after XO deletes a restore point (its delete button), our next run is a delta, verify finds no error, every restore point restores", async function () {
      const guest = await createGuest(harness, 'deleted-point')
      for (let run = 0; run < 4; run++) await backUp(harness, guest, run, 10)
      const points = await restorePointsOf(harness.handler, guest.vm, JOB)
      const secondNewest = points.at(-2)!
      const clean = await xoDeleteRestorePoint(harness.handler, guest.vm, secondNewest.id)
      assert.deepEqual(clean.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [])

      await backUp(harness, guest, 4, 10, 'delta')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, 'after the delete')
      // and XO finds the remote in order again
      assert.deepEqual((await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: false })).warnings, [])
    })

    it("after XO's clean-up merged the VHD of a deleted restore point (as an XO job of the same VM does), our next run is a delta and verify is clean", async function () {
      const guest = await createGuest(harness, 'xo-merged')
      for (let run = 0; run < 4; run++) await backUp(harness, guest, run, 10)
      const points = await restorePointsOf(harness.handler, guest.vm, JOB)
      await xoDeleteRestorePoint(harness.handler, guest.vm, points.at(-2)!.id)
      const merged = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
      assert.equal(merged.merge, true, 'XO merged the deleted VHD into its child')
      assert.deepEqual(merged.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [])
      await assertRestorable(harness, guest, "right after XO's merge")

      await backUp(harness, guest, 4, 10, 'delta')
      assert.deepEqual(await remoteProblems(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, "after our run that followed XO's merge")
      // retention merges past XO's merge too
      await backUp(harness, guest, 5, 2, 'delta')
      assert.deepEqual(await remoteProblems(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, 'after our retention')
    })

    /** VHD paths of the disk's chain, oldest first, from the metadata of the job's restore points */
    async function chainOf(guest: Guest): Promise<string[]> {
      return (await restorePointsOf(harness.handler, guest.vm, JOB)).map(point => point.disks[0]!.vhd)
    }

    /** our merge of the two oldest VHDs, killed before its change `killBefore`, after retention removed the oldest metadata */
    async function crashOurMerge(guest: Guest, killBefore: number): Promise<string> {
      for (let run = 0; run < 3; run++) await backUp(harness, guest, run, 10)
      const chain = await chainOf(guest)
      const oldest = (await restorePointsOf(harness.handler, guest.vm, JOB))[0]!
      await harness.handler.unlink(oldest.id)
      guest.hashes.delete(oldest.id)
      const child = await runMergeChild(harness.remote.path!, chain.slice(0, 2), { killBefore })
      assert.equal(child.signal, 'SIGKILL', `the merge did not die before change ${killBefore}: ${child.stdout}${child.stderr}`)
      const dir = chain[0]!.slice(0, chain[0]!.lastIndexOf('/'))
      assert.equal((await listMergeStates(harness.handler, dir)).length, 1, 'the crash left our merge pending')
      return dir
    }

    const xoCleanUps = remote === 'file' ? [{ remove: true, merge: false }, { remove: true, merge: true }] : [{ remove: true, merge: false }]
    for (const killBefore of KILL_POINTS) {
      it(`a crash in our merge (before change ${killBefore}): XO's clean-up ${xoCleanUps.map(o => (o.merge ? 'with merges' : 'of its delete')).join(', then ')} does not fail, our next run succeeds`, async function () {
        const guest = await createGuest(harness, 'merge-crash')
        const dir = await crashOurMerge(guest, killBefore)
        for (const opts of xoCleanUps) {
          const clean = await xoCleanVm(harness.handler, guest.vm, opts)
          assert.deepEqual(clean.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [], `XO's clean-up ${JSON.stringify(opts)}`)
        }
        await backUp(harness, guest, 3, 10)
        assert.deepEqual(await listMergeStates(harness.handler, dir), [], 'merge states left')
        await assertRestorable(harness, guest, 'after our run')
      })
    }

    it('an interrupted merge of ours under the state name earlier versions used (`.<name>.merge.json`) is still finished', async function () {
      const guest = await createGuest(harness, 'old-state-name')
      const dir = await crashOurMerge(guest, KILL_POINTS.at(-1)!)
      const [state] = await listMergeStates(harness.handler, dir)
      assert.match(state!, /\.cd-merge\.json$/)
      await harness.handler.rename(state!, state!.replace(/\.cd-merge\.json$/, '.merge.json'))
      await backUp(harness, guest, 3, 10)
      assert.deepEqual(await listMergeStates(harness.handler, dir), [], 'merge states left')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, 'after our run')
    })
  })
}
