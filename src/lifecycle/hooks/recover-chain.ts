/**
 * Chain recovery: a run killed midway may leave VHDs that no metadata refers to, or a merge half
 * done. Before this run looks for its base, the repository finishes or removes them (the same
 * idempotent pass as retention), so a delta is never based on a leftover and no name is reused.
 */
import { enforceRetention } from '../../repository/retention.js'
import type { BackupHook } from './hook.js'

export const recoverChain: BackupHook = {
  step: 'selectDisks',
  name: 'recover-chain',
  async run(ctx) {
    const { merges, deleted } = await enforceRetention(ctx.handler, {
      vm: ctx.vmUuid,
      jobId: ctx.job.id,
      keep: ctx.job.retention,
      signal: ctx.signal,
    })
    if (merges.length > 0 || deleted.length > 0) {
      ctx.reporter.info(`chain recovered: ${merges.length} interrupted merge(s) finished, ${deleted.length} leftover(s) removed`, {
        deleted,
      })
    }
  },
}
