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
import { runJob } from '../../src/lifecycle/run-job.js'
import { readVhdInfo } from '../../src/repository/chain.js'
import { vmDir } from '../../src/repository/layout.js'
import { listMergeStates } from '../../src/repository/merge/state.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import { listTree, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { runMergeChild } from '../repository/merge-crash-runner.js'
import { xoCleanVm, xoDeleteRestorePoint } from '../helpers/xo-backup-archive.js'
import { assertRestorable, backUp, createGuest, errors, JOB, SEED, snapshotTree, type Guest } from '../helpers/xo-coexistence.js'

/** the changes of our merge (test/repository/merge-crash-child.ts) to die before */
const KILL_POINTS = (process.env['COEXIST_KILL_POINTS'] ?? '6').split(',').map(Number)

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

    it("after XO deletes restore points and its clean-up merges them away (as an XO job of the same VM does), our next run is a delta, verify finds no error, every restore point restores", async function () {
      const guest = await createGuest(harness, 'xo-merged')
      for (let run = 0; run < 5; run++) await backUp(harness, guest, run, 10)
      const points = await restorePointsOf(harness.handler, guest.vm, JOB)
      // the second-newest and a middle one: XO's merge folds each into its child
      for (const point of [points.at(-2)!, points.at(-4)!]) {
        await harness.handler.unlink(point.id)
        guest.hashes.delete(point.id)
      }
      const merged = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
      assert.equal(merged.merge, true, "XO's clean-up merged the unused VHDs")
      assert.deepEqual(merged.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [])
      assert.deepEqual(await errors(harness.handler, guest.vm), [], 'verify right after the merge by XO')
      await assertRestorable(harness, guest, "after XO's merge")

      await backUp(harness, guest, 5, 10, 'delta')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, 'after our next run')
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

    if (remote === 'file') it("an interrupted merge of XO's own in our chain does not make our runs fail; XO then finishes it", async function () {
      const guest = await createGuest(harness, 'xo-pending')
      for (let run = 0; run < 3; run++) await backUp(harness, guest, run, 10)
      const chain = await chainOf(guest)
      const points = await restorePointsOf(harness.handler, guest.vm, JOB)
      // XO's delete of the oldest restore point, then XO's merge of its VHD into the next, cut
      // right after XO wrote its state (MergeRemoteDisk: the state comes before any block)
      await xoDeleteRestorePoint(harness.handler, guest.vm, points[0]!.id)
      guest.hashes.delete(points[0]!.id)
      const dir = chain[0]!.slice(0, chain[0]!.lastIndexOf('/'))
      const name = (path: string) => path.slice(path.lastIndexOf('/') + 1)
      const xoState = `${dir}/.${name(chain[0]!)}.merge.json`
      const [parent, child] = [await readVhdInfo(harness.handler, chain[0]!), await readVhdInfo(harness.handler, chain[1]!)]
      await harness.handler.writeFile(
        xoState,
        JSON.stringify({
          child: { uuid: child.uuid },
          parent: { uuid: parent.uuid },
          chain: [name(chain[0]!), name(chain[1]!)],
          currentBlock: 0,
          mergedDataSize: 0,
          step: 'mergeBlocks',
          diskSize: 0,
        }),
      )

      const ours = await backUp(harness, guest, 3, 2, 'delta')
      assert.match(ours.warnings.join('\n'), /Xen Orchestra's own interrupted merge/)
      assert.deepEqual(await listMergeStates(harness.handler, dir), [xoState], "XO's state is left to XO")

      const xo = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
      assert.deepEqual(xo.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [], "XO's clean-up")
      assert.deepEqual(await listMergeStates(harness.handler, dir), [], 'XO finished its merge')
      await backUp(harness, guest, 4, 2, 'delta')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, "after XO's merge and our retention")
    })

    it("with an XO full backup (XVA) and another XO job's chain in the same VM folder, both tools keep working and neither deletes the other's files", async function () {
      const guest = await createGuest(harness, 'neighbours')
      const folder = vmDir(guest.vm)
      // another XO incremental job of the same VM: its chain, in XO's format (no extras of ours)
      const xoJob = 'b1e2c3d4-0000-4000-8000-00000000a0b0'
      await backUp(harness, guest, 0, 10)
      await runJob(harness.job([guest.vm], { id: xoJob, retention: 10 }), harness.env())
      await runJob(harness.job([guest.vm], { id: xoJob, retention: 10 }), harness.env())
      const xoJsons = (await restorePointsOf(harness.handler, guest.vm, xoJob)).map(point => point.id)
      for (const point of await restorePointsOf(harness.handler, guest.vm, xoJob)) {
        const metadata = JSON.parse((await harness.handler.readFile(point.id)).toString()) as Record<string, unknown>
        delete metadata['continuousDelta']
        await harness.handler.writeFile(point.id, JSON.stringify(metadata), { flags: 'w' })
      }
      for (const path of (await listTree(harness.handler, `${folder}/vdis/${xoJob}`)).filter(p => p.endsWith('.checksums'))) {
        await harness.handler.unlink(path)
      }
      // an XO full backup: metadata of mode "full", the XVA (a tar: 512-byte records, two zero
      // records at its end) and its checksum file
      const [any] = await restorePointsOf(harness.handler, guest.vm, JOB)
      const ours = JSON.parse((await harness.handler.readFile(any!.id)).toString()) as Record<string, unknown>
      const ts = '20200101T000000Z'
      const xva = Buffer.concat([Buffer.from('vm-xva-header'.padEnd(512, ' ')), Buffer.alloc(1536)])
      await harness.handler.writeFile(`${folder}/${ts}.xva`, xva)
      await harness.handler.writeFile(`${folder}/${ts}.xva.checksum`, createHash('sha256').update(xva).digest('hex'))
      await harness.handler.writeFile(
        `${folder}/${ts}.json`,
        JSON.stringify({ version: '2.0.0', mode: 'full', jobId: 'c0ffee00-0000-4000-8000-00000000f011', scheduleId: 'c0ffee00-0000-4000-8000-00000000f012', timestamp: Date.UTC(2020, 0, 1), vm: ours['vm'], vmSnapshot: ours['vmSnapshot'], xva: `./${ts}.xva`, size: xva.length }),
      )
      const theirs = async () =>
        (await snapshotTree(harness.handler)).filter(
          line => line.includes(`/vdis/${xoJob}/`) || line.includes(`/${ts}.`) || xoJsons.some(id => line.startsWith(`${id} `)),
        )
      const xoFiles = await theirs()
      if (remote === 'file') assert.equal(xoFiles.length, 3 + 2 * 2, xoFiles.join('\n'))

      // our runs, with merges past retention, leave XO's files as they were
      for (let run = 1; run < 5; run++) await backUp(harness, guest, run, 2, 'delta')
      assert.deepEqual(await theirs(), xoFiles, "XO's files after our runs")
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertRestorable(harness, guest, 'beside the XO backups')

      // XO's clean-up, as its job would run it: nothing of ours, nothing of its own deleted
      const ourFiles = (await snapshotTree(harness.handler)).filter(line => line.includes(`/vdis/${JOB}/`))
      const xo = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
      assert.deepEqual(xo.warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache')), [], "XO's clean-up")
      assert.deepEqual((await snapshotTree(harness.handler)).filter(line => line.includes(`/vdis/${JOB}/`)), ourFiles, 'our files after XO')
      assert.deepEqual(await theirs(), xoFiles, "XO's files after XO's clean-up")
      await backUp(harness, guest, 5, 2, 'delta')
      await assertRestorable(harness, guest, "after XO's clean-up")
    })

    if (remote === 'file') it('an interrupted merge of ours under the state name earlier versions used (`.<name>.merge.json`) is still finished', async function () {
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

describe("Xen Orchestra's Backup → Health page and our reference snapshots", function () {
  let harness: Harness

  beforeEach(async function () {
    harness = await startHarness({ inventory: 'empty' })
  })

  afterEach(async function () {
    await harness?.close()
  })

  /**
   * xo-web's `getLoneSnapshots` ("Detached VM snapshots", with a delete button): every VM snapshot
   * whose other-config has `xo:backup:job`, when that names no XO backup job (or its schedule or
   * VM is gone). No XO backup job exists here, as for a VM only our plugin backs up.
   */
  function detachedVmSnapshots(xoBackupJobs: ReadonlySet<string> = new Set()): string[] {
    return harness.pool.sim
      .all('VM')
      .filter(vm => vm.is_a_snapshot === true)
      .filter(vm => {
        const jobId = (vm.other_config as Record<string, string>)['xo:backup:job']
        return jobId !== undefined && !xoBackupJobs.has(jobId)
      })
      .map(vm => String(vm.uuid))
  }

  function ourSnapshots(vm: string): { $ref: string; uuid: string; other_config: Record<string, string> }[] {
    return harness.pool.sim
      .all('VM')
      .filter(record => record.is_a_snapshot === true && (record.other_config as Record<string, string>)[BACKUP_KEYS.vm] === vm)
      .map(record => ({ $ref: String(record.$ref), uuid: String(record.uuid), other_config: record.other_config as Record<string, string> }))
  }

  it('our reference snapshot is not a "detached VM snapshot" (no xo:backup:job), and is found by its own job key', async function () {
    const guest = await createGuest(harness, 'health')
    await backUp(harness, guest, 0, 3, 'full')
    await backUp(harness, guest, 1, 3, 'delta')
    const [reference] = ourSnapshots(guest.vm)
    assert.ok(reference !== undefined, 'a reference snapshot is kept')
    assert.equal(reference.other_config[BACKUP_KEYS.job], JOB)
    assert.deepEqual(detachedVmSnapshots(), [])
    for (const vdi of harness.pool.sim.all('VDI').filter(record => record.is_a_snapshot === true)) {
      assert.equal((vdi.other_config as Record<string, string>)['xo:backup:job'], undefined, `VDI ${String(vdi.uuid)}`)
    }
  })

  it('a reference snapshot written by an earlier version (xo:backup:job) is still the base: the next run is a delta', async function () {
    const guest = await createGuest(harness, 'upgrade')
    await backUp(harness, guest, 0, 3, 'full')
    // what the previous version wrote: the job under xo:backup:job, on the VM snapshot and its VDIs
    const [reference] = ourSnapshots(guest.vm)
    const refs = [
      { type: 'VM', ref: reference!.$ref },
      ...harness.pool.sim
        .all('VDI')
        .filter(vdi => vdi.is_a_snapshot === true && (vdi.other_config as Record<string, string>)[BACKUP_KEYS.job] === JOB)
        .map(vdi => ({ type: 'VDI', ref: String(vdi.$ref) })),
    ]
    for (const { type, ref } of refs) {
      await harness.xapi.call(`${type}.remove_from_other_config`, ref, BACKUP_KEYS.job)
      await harness.xapi.call(`${type}.add_to_other_config`, ref, 'xo:backup:job', JOB)
    }
    assert.deepEqual(detachedVmSnapshots(), [reference!.uuid], 'the old form is what XO lists as detached')
    await backUp(harness, guest, 1, 3, 'delta')
    assert.deepEqual(detachedVmSnapshots(), [], 'the old reference snapshot was replaced by one XO does not list')
    await assertRestorable(harness, guest, 'after the upgrade')
  })
})
