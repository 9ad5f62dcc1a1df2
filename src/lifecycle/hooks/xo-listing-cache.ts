/**
 * Xen Orchestra's listing cache: once retention is done with the VM folder, its `cache.json.gz`
 * is written anew from the metadata files (`repository/metadata-cache.ts`), as Xen Orchestra's
 * own backups keep it, so that Xen Orchestra lists the folder without rebuilding it and its
 * clean-up finds it in order. Failing to write it loses nothing (Xen Orchestra rebuilds a
 * missing cache): the run says so and succeeds.
 */
import { writeMetadataCache } from '../../repository/metadata-cache.js'
import { warn } from '../context.js'
import type { BackupHook } from './hook.js'

export const xoListingCache: BackupHook = {
  step: 'retention',
  name: 'xo-listing-cache',
  async run(ctx) {
    try {
      await writeMetadataCache(ctx.handler, ctx.vmUuid)
    } catch (error) {
      ctx.signal.throwIfAborted()
      warn(ctx, `Xen Orchestra's listing cache of VM ${ctx.vmUuid} was not written (Xen Orchestra rebuilds it): ${(error as Error).message}`)
    }
  },
}
