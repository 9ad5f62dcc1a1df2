/**
 * Deleting a restore point between two others, its merge killed (SIGKILL) before each of its
 * changes to the remote in turn, VHD files and VHD directories (long form of the quick case in
 * delete-point.test.ts; npm run test:campaign). After each kill, the next run of the job, the
 * next deletion (of the newest restore point) or a restore of every restore point left, in turn,
 * finishes the merge: no merge state is left, every remaining restore point restores byte-exact, `verify` finds no
 * error. DELETE_KILL_POINTS=3,7 replays chosen points.
 */
import assert from 'node:assert/strict'
import { deleteRestorePoint } from '../../src/repository/delete.js'
import { listMergeStates } from '../../src/repository/merge/state.js'
import { restorePointsOf, startHarness, type Harness } from '../lifecycle/harness.js'
import { assertRestorable, backUp, createGuest, errors, JOB } from '../helpers/xo-coexistence.js'
import { crashMiddleDeletion } from './delete-point-crash.js'

const chosen = process.env['DELETE_KILL_POINTS']?.split(',').map(Number)

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`deleting a restore point between two others, killed in its merge before every change [${remote}]`, function () {
    this.timeout(1_800_000)
    let harness: Harness

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
    })

    after(async function () {
      await harness?.close()
    })

    it('is finished by the next run, the next deletion or a restore, whatever change it died before', async function () {
      const whole = await crashMiddleDeletion(harness, await createGuest(harness, 'uninterrupted'), undefined)
      const changes = whole.changes!
      assert.ok(changes >= 8, `${changes} changes`)
      const points = chosen ?? Array.from({ length: changes }, (_, i) => i + 1)
      console.log(`      ${changes} changes; kill points ${points.join(',')} (replay: DELETE_KILL_POINTS=…)`)
      for (const killBefore of points) {
        const guest = await createGuest(harness, `kill-${killBefore}`)
        const { deleted, dir } = await crashMiddleDeletion(harness, guest, killBefore)
        guest.hashes.delete(deleted)
        const label = `killed before change ${killBefore}/${changes}`
        if (killBefore % 3 === 0) {
          await backUp(harness, guest, 4, 10, 'delta')
        } else if (killBefore % 3 === 1) {
          const newest = (await restorePointsOf(harness.handler, guest.vm, JOB)).at(-1)!.id
          await deleteRestorePoint(harness.handler, newest)
          guest.hashes.delete(newest)
        } else {
          // a restore right after the crash finishes the merge first, then reads exactly its bytes
          await assertRestorable(harness, guest, `${label}, restored first`)
        }
        assert.deepEqual(await listMergeStates(harness.handler, dir), [], `${label}: merge states left`)
        await assertRestorable(harness, guest, label)
        assert.deepEqual(await errors(harness.handler, guest.vm), [], `${label}: verify`)
      }
    })
  })
}
