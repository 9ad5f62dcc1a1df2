/**
 * Continuous merge: after each committed restore point, the job's retention is enforced; the
 * oldest restore points past it are merged into the full, so the chain never grows beyond it.
 */
import { enforceRetention } from '../../repository/retention.js'
import type { BackupHook } from './hook.js'

export const continuousMerge: BackupHook = {
  step: 'retention',
  name: 'continuous-merge',
  async run(ctx) {
    const { removed, merges } = await enforceRetention(ctx.handler, {
      vm: ctx.vmUuid,
      jobId: ctx.job.id,
      keep: ctx.job.retention,
      signal: ctx.signal,
      onMerge: merge =>
        ctx.reporter.info(`merged ${merge.blocks} blocks of disk ${merge.vdi} in ${merge.durationMs} ms`, {
          vdi: merge.vdi,
          blocks: merge.blocks,
          durationMs: merge.durationMs,
        }),
    })
    for (const merge of merges) {
      ctx.merges.push({ vdi: merge.vdi, blocks: merge.blocks, durationMs: merge.durationMs })
    }
    if (removed.length > 0) {
      ctx.reporter.info(`retention ${ctx.job.retention}: ${removed.length} restore point(s) past it removed`, { removed })
    }
  },
}
