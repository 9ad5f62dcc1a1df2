/**
 * Continuous merge: after each committed restore point, the job's retention is enforced; the
 * oldest restore points past it are merged into the full, so the chain never grows beyond it.
 * Restore points that cannot be restored (damaged metadata, a broken chain) are not counted and
 * are named in a warning of the run; another tool's backups in the VM folder are left alone.
 */
import { enforceRetention } from '../../repository/retention.js'
import { warn } from '../context.js'
import type { RunReporter } from '../job.js'
import type { BackupHook } from './hook.js'

/** the block size of the VHDs the product writes (2 MiB): a merged block moves that many bytes */
const VHD_BLOCK_SIZE = 2 * 1024 * 1024

export const continuousMerge: BackupHook = {
  step: 'retention',
  name: 'continuous-merge',
  async run(ctx) {
    // a `merge` task, as XO's backup logs show one (with the bytes merged) beside the transfers
    const task = ctx.reporter.child('merge')
    let outcome
    try {
      outcome = await merge(ctx, task)
    } catch (error) {
      task.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
      throw error
    }
    task.end({ status: 'success', data: { size: outcome.merges.reduce((total, merge) => total + merge.blocks * VHD_BLOCK_SIZE, 0), merges: outcome.merges.length } })
    const { removed, deferred, unmerged, unrestorable, foreign, damagedData = [] } = outcome
    for (const { message, dir, statePath } of deferred) {
      warn(ctx, message, { dir, statePath })
    }
    for (const { message, dir } of unmerged) warn(ctx, message, { dir })
    for (const { message, vdi, vhds, restorePoints } of damagedData) {
      warn(ctx, message, { vdi, vhds, restorePoints })
    }
    if (unrestorable.length > 0) {
      warn(
        ctx,
        `${unrestorable.length} restore point(s) of this VM cannot be restored and are not counted toward retention ${ctx.job.retention} (left as they are): ` +
          unrestorable.map(point => `${point.path} (${point.reason})`).join('; '),
        { unrestorable: unrestorable.map(point => point.path) }
      )
    }
    if (foreign.length > 0) {
      ctx.reporter.info(`left alone: ${foreign.map(file => `${file.path} (${file.reason})`).join('; ')}`, { foreign: foreign.map(file => file.path) })
    }
    if (removed.length > 0) {
      ctx.reporter.info(`retention ${ctx.job.retention}: ${removed.length} restore point(s) past it removed`, { removed })
    }
  },
}

/** a disk by its name (`"system"`), its uuid when the VM no longer has it */
function diskName(ctx: Parameters<BackupHook['run']>[0], vdi: string): string {
  const name = ctx.disks.find(disk => disk.vdi.uuid === vdi)?.vdi.name_label
  return name === undefined ? vdi : `"${name}"`
}

async function merge(ctx: Parameters<BackupHook['run']>[0], task: RunReporter): Promise<Awaited<ReturnType<typeof enforceRetention>>> {
  const outcome = await enforceRetention(ctx.handler, {
    vm: ctx.vmUuid,
    jobId: ctx.job.id,
    keep: ctx.job.retention,
    signal: ctx.signal,
    // the progress of the merge going on: the blocks of that disk merged so far
    onMergeProgress: (_vdi, done, total) => task.progress(total === 0 ? 100 : (100 * done) / total),
    onMerge: merge =>
      task.info(`merged ${merge.blocks} blocks of disk ${diskName(ctx, merge.vdi)} in ${merge.durationMs} ms`, {
        vdi: merge.vdi,
        blocks: merge.blocks,
        durationMs: merge.durationMs,
      }),
  })
  for (const merge of outcome.merges) {
    ctx.merges.push({ vdi: merge.vdi, blocks: merge.blocks, durationMs: merge.durationMs })
  }
  return outcome
}
