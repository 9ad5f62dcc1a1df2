/**
 * The steps of the backup of one VM, in the order they run. The list is closed: a hook can only
 * be registered on one of these names. `cleanup` always runs last, whether the steps before it
 * succeeded or not.
 *
 * - `checkPool`       read the pool's version (the pool gate hook refuses a pool too old)
 * - `selectDisks`     list the VM's disks (hooks leave some out, e.g. `[NOBAK]`)
 * - `snapshot`        snapshot the VM without the excluded disks, tag it
 * - `chooseBase`      per disk: a delta from the reference snapshot, or a full (and why)
 * - `transfer`        stream each disk from XAPI into a VHD on the remote
 * - `commit`          write the restore point's metadata, mark the snapshot exported
 * - `rotateReference` destroy the previous reference snapshot of this job (under a job, while the
 *                     run goes on: the pool holds a disk just exported; the job waits for it)
 * - `retention`       hooks enforce the job's retention (merging old deltas)
 * - `cleanup`         undo what a failed run created; lift the migration block
 */
export const STEPS = [
  'checkPool',
  'selectDisks',
  'snapshot',
  'chooseBase',
  'transfer',
  'commit',
  'rotateReference',
  'retention',
  'cleanup',
] as const

export type Step = (typeof STEPS)[number]

export function isStep(name: string): name is Step {
  return (STEPS as readonly string[]).includes(name)
}
