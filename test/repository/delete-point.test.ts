/**
 * Deleting one restore point between two others: its delta is folded into its child by the merge
 * engine retention uses, so that the child keeps its name and its bytes and becomes a delta of the
 * deleted one's parent. Every remaining restore point restores byte-exact, `verify` finds nothing,
 * Xen Orchestra's own clean-up finds nothing to fix, and the next run is a delta — on VHD files,
 * VHD directories and (in short) S3. A damaged VHD refuses the deletion (nothing deleted); a crash in the
 * deletion's merge is finished by the next deletion (and by the next run or a restore:
 * delete-point.campaign.ts kills it before every change).
 */
import assert from 'node:assert/strict'
import { readVhdInfo } from '../../src/repository/chain.js'
import { deleteRestorePoint } from '../../src/repository/delete.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { listMergeStates } from '../../src/repository/merge/state.js'
import { hashRestoredDisk, restorePointsOf, startHarness, type Harness } from '../lifecycle/harness.js'
import type { RemoteKind } from '../helpers/remotes.js'
import { xoCleanVm } from '../helpers/xo-backup-archive.js'
import { assertRestorable, backUp, createGuest, errors, JOB, snapshotTree, type Guest } from '../helpers/xo-coexistence.js'
import { flipFourBytesInFirstBlock } from './damage.js'
import { crashMiddleDeletion, diskDirOf } from './delete-point-crash.js'

const xoWarnings = (warnings: readonly string[]) => warnings.filter(w => !w.startsWith('unexpected number of entries in backup cache'))

async function ids(harness: Harness, guest: Guest): Promise<string[]> {
  return (await restorePointsOf(harness.handler, guest.vm, JOB)).map(point => point.id)
}

async function vhdOf(harness: Harness, guest: Guest, id: string): Promise<string> {
  const point = (await restorePointsOf(harness.handler, guest.vm, JOB)).find(candidate => candidate.id === id)
  return point!.disks[0]!.vhd
}

/** XO's clean-up (its delete's, and its next job's where XO merges on that remote) warns about nothing and changes nothing */
async function assertXoFindsNothing(harness: Harness, guest: Guest, kind: RemoteKind): Promise<void> {
  // XO's clean-up (re)writes its listing cache of the VM folder: not a fix
  const files = async () => (await snapshotTree(harness.handler)).filter(line => !line.includes('/cache.json.gz '))
  const before = await files()
  assert.deepEqual(xoWarnings((await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: false })).warnings), [], "XO's clean-up of its delete")
  if (kind === 'file') {
    const asJob = await xoCleanVm(harness.handler, guest.vm, { remove: true, merge: true })
    assert.deepEqual(xoWarnings(asJob.warnings), [], "XO's clean-up with merges")
    assert.equal(asJob.merge, false, 'XO found nothing to merge')
  }
  assert.deepEqual(await files(), before, "XO's clean-up changed nothing")
}

describe('deleting a restore point between two others [s3]', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness({ inventory: 'empty', remote: 's3' })
  })

  after(async function () {
    await harness?.close()
  })

  it('the next restore point keeps its bytes, every other one restores, verify finds nothing', async function () {
    const guest = await createGuest(harness, 'middle-s3')
    for (let run = 0; run < 3; run++) await backUp(harness, guest, run, 10)
    const [p0, p1, p2] = await ids(harness, guest)
    const result = await deleteRestorePoint(harness.handler, p1!)
    assert.equal(result.merges[0]?.mergedPath, await vhdOf(harness, guest, p2!))
    guest.hashes.delete(p1!)
    assert.deepEqual(await ids(harness, guest), [p0, p2])
    assert.equal((await readVhdInfo(harness.handler, await vhdOf(harness, guest, p2!))).parent?.path, await vhdOf(harness, guest, p0!))
    await assertRestorable(harness, guest, 'after the deletion')
    assert.deepEqual(await errors(harness.handler, guest.vm), [], 'verify')
  })
})

for (const kind of ['file', 'file-vhd-directory'] as const) {
  describe(`deleting a restore point between two others [${kind}]`, function () {
    let harness: Harness

    beforeEach(async function () {
      harness = await startHarness({ inventory: 'empty', remote: kind })
    })

    afterEach(async function () {
      await harness?.close()
    })

    it('folds its delta into the next restore point, which keeps its name and bytes; every other one restores, verify and XO find nothing, the next run is a delta', async function () {
      const guest = await createGuest(harness, 'middle')
      for (let run = 0; run < 5; run++) await backUp(harness, guest, run, 10)
      const [p0, p1, p2, p3, p4] = await ids(harness, guest)
      const [vhd1, vhd2, vhd3] = [await vhdOf(harness, guest, p1!), await vhdOf(harness, guest, p2!), await vhdOf(harness, guest, p3!)]
      const uuid3 = (await readVhdInfo(harness.handler, vhd3)).uuid

      const result = await deleteRestorePoint(harness.handler, p2!)
      assert.equal(result.merges.length, 1, JSON.stringify(result))
      assert.equal(result.merges[0]!.mergedPath, vhd3)
      assert.equal(result.wasNewest, false)
      guest.hashes.delete(p2!)
      assert.deepEqual(await ids(harness, guest), [p0, p1, p3, p4])
      await assert.rejects(harness.handler.getSize(vhd2), 'the deleted delta is gone')

      // the next restore point: same name, same UUID, now a delta of the deleted one's parent
      const merged = await readVhdInfo(harness.handler, vhd3)
      assert.equal(merged.uuid, uuid3)
      assert.equal(merged.parent?.path, vhd1)
      assert.equal(merged.parent?.uuid, (await readVhdInfo(harness.handler, vhd1)).uuid)
      assert.deepEqual(Object.values((await readMetadata(harness.handler, p3!)).isVhdDifferencing), [true])
      assert.deepEqual(await listMergeStates(harness.handler, diskDirOf(vhd3)), [])

      await assertRestorable(harness, guest, 'after the deletion')
      assert.deepEqual(await errors(harness.handler, guest.vm), [], 'verify')
      await assertXoFindsNothing(harness, guest, kind)

      // the one right after the full too: its child, already merged once, is merged again
      await deleteRestorePoint(harness.handler, p1!)
      guest.hashes.delete(p1!)
      assert.deepEqual(await ids(harness, guest), [p0, p3, p4])
      assert.equal((await readVhdInfo(harness.handler, vhd3)).parent?.path, await vhdOf(harness, guest, p0!))
      await assertRestorable(harness, guest, 'after the second deletion')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])

      await backUp(harness, guest, 5, 10, 'delta')
      await assertRestorable(harness, guest, 'after the next run')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertXoFindsNothing(harness, guest, kind)
    })

    it('a damaged block in the VHD to merge refuses the deletion: nothing deleted, the damage recorded, the error says why', async function () {
      const guest = await createGuest(harness, 'damaged')
      for (let run = 0; run < 4; run++) await backUp(harness, guest, run, 10)
      const before = await ids(harness, guest)
      const vhd2 = await vhdOf(harness, guest, before[2]!)
      await flipFourBytesInFirstBlock(harness.remote.path!, harness.handler, vhd2)

      await assert.rejects(deleteRestorePoint(harness.handler, before[1]!), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'DATA_DAMAGED')
        assert.match(error.message, /was not deleted, nothing was/)
        assert.match(error.message, /damaged data, not merged: block \d+ of /)
        assert.ok(error.message.includes(vhd2), error.message)
        return true
      })
      assert.deepEqual(await ids(harness, guest), before, 'every restore point is still there')
      assert.deepEqual(await listMergeStates(harness.handler, diskDirOf(vhd2)), [], 'no merge was started')
      // the restore point reading the damage says so; the ones before it still restore
      assert.ok((await readMetadata(harness.handler, before[2]!)).continuousDelta?.damaged?.length, 'the damage is recorded')
      for (const point of (await restorePointsOf(harness.handler, guest.vm, JOB)).slice(0, 2)) {
        assert.equal(await hashRestoredDisk(harness.handler, point, guest.disk), guest.hashes.get(point.id), point.id)
      }
    })

    it("a crash (SIGKILL) in the deletion's merge is finished by the next deletion", async function () {
      const guest = await createGuest(harness, 'crash')
      const { deleted, dir } = await crashMiddleDeletion(harness, guest, 6)
      guest.hashes.delete(deleted)
      assert.equal((await listMergeStates(harness.handler, dir)).length, 1, 'the crash left the merge pending')
      // the next deletion, of another restore point, finishes it first
      const points = await ids(harness, guest)
      const result = await deleteRestorePoint(harness.handler, points.at(-1)!)
      guest.hashes.delete(points.at(-1)!)
      assert.ok(result.merges.length >= 1, JSON.stringify(result))
      assert.deepEqual(await listMergeStates(harness.handler, dir), [])
      await assertRestorable(harness, guest, 'after the next deletion')
      assert.deepEqual(await errors(harness.handler, guest.vm), [])
      await assertXoFindsNothing(harness, guest, kind)
    })
  })
}
