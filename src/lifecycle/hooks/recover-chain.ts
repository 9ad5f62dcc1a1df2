/**
 * Chain recovery: a run killed midway may leave VHDs that no metadata refers to, or a merge half
 * done. Before this run looks for its base, the repository finishes or removes them (the same
 * idempotent pass as retention), so a delta is never based on a leftover and no name is reused.
 * The same pass applies a retention the user lowered since the last run (the restore points past
 * it are removed before this run adds one): the log says which of the two happened.
 */
import { enforceRetention } from '../../repository/retention.js'
import type { BackupHook } from './hook.js'

export const recoverChain: BackupHook = {
  step: 'selectDisks',
  name: 'recover-chain',
  async run(ctx) {
    const { removed, merges, resumed, deleted } = await enforceRetention(ctx.handler, {
      vm: ctx.vmUuid,
      jobId: ctx.job.id,
      keep: ctx.job.retention,
      signal: ctx.signal,
      onMerge: merge => {
        ctx.reporter.info(`merged ${merge.blocks} blocks of disk ${merge.vdi} in ${merge.durationMs} ms`, {
          vdi: merge.vdi,
          blocks: merge.blocks,
          durationMs: merge.durationMs,
        })
        ctx.merges.push({ vdi: merge.vdi, blocks: merge.blocks, durationMs: merge.durationMs })
      },
    })
    if (resumed > 0) {
      ctx.reporter.info(`chain recovered: ${resumed} interrupted merge(s) finished`, { merges: resumed })
    }
    if (removed.length > 0) {
      ctx.reporter.info(
        `retention ${ctx.job.retention}: ${removed.length} restore point(s) past it removed before this run (the retention is lower than the restore points kept), ${merges.length - resumed} merge(s) into the full`,
        { retention: ctx.job.retention, removed }
      )
    }
    if (removed.length === 0 && deleted.length > 0) {
      ctx.reporter.info(`chain recovered: ${deleted.length} leftover(s) of an interrupted run removed`, { deleted })
    }
  },
}
