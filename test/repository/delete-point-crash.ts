/**
 * A deletion of a restore point between two others killed (SIGKILL) in its merge: the deletion
 * removes the restore point's metadata, then merges its delta into its child
 * (test/repository/merge-crash-child.ts runs that merge in a child process that dies before its
 * Nth change to the remote).
 */
import assert from 'node:assert/strict'
import { restorePointsOf, type Harness } from '../lifecycle/harness.js'
import { backUp, JOB, type Guest } from '../helpers/xo-coexistence.js'
import { runMergeChild } from './merge-crash-runner.js'

export function diskDirOf(vhd: string): string {
  return vhd.slice(0, vhd.lastIndexOf('/'))
}

/**
 * Four runs, then the deletion of the second restore point, its merge killed before change
 * `killBefore` (undefined: not killed); the deleted restore point, its disk folder, and the
 * changes the merge made (when it completed).
 */
export async function crashMiddleDeletion(harness: Harness, guest: Guest, killBefore: number | undefined): Promise<{ deleted: string; dir: string; changes?: number }> {
  for (let run = 0; run < 4; run++) await backUp(harness, guest, run, 10)
  const points = await restorePointsOf(harness.handler, guest.vm, JOB)
  const [middle, child] = [points[1]!, points[2]!]
  const chain = [middle.disks[0]!.vhd, child.disks[0]!.vhd]
  await harness.handler.unlink(middle.id)
  const outcome = await runMergeChild(harness.remote.path!, chain, killBefore === undefined ? {} : { killBefore })
  if (killBefore === undefined) {
    assert.equal(outcome.code, 0, outcome.stderr)
    return { deleted: middle.id, dir: diskDirOf(chain[0]!), changes: (JSON.parse(outcome.stdout) as { changes: number }).changes }
  }
  assert.equal(outcome.signal, 'SIGKILL', `the merge did not die before change ${killBefore}: ${outcome.stdout}${outcome.stderr}`)
  return { deleted: middle.id, dir: diskDirOf(chain[0]!) }
}
