import { destroySnapshot } from '../../xapi/snapshot.js'
import { fetchVm } from '../../xapi/records.js'
import type { VmRunContext } from '../context.js'
import { jobSnapshots } from '../reference-snapshot.js'

/** the new snapshot becomes the job's only reference: every earlier snapshot of the job is destroyed */
export async function rotateReference(ctx: VmRunContext): Promise<void> {
  if (ctx.vm === undefined || ctx.snapshotRef === undefined) {
    return
  }
  const vm = await fetchVm(ctx.xapi, ctx.vm.$ref)
  for (const snapshot of await jobSnapshots(ctx.xapi, vm, ctx.job.id)) {
    if (snapshot.$ref !== ctx.snapshotRef) {
      await destroySnapshot(ctx.xapi, snapshot.$ref)
      ctx.reporter.info(`previous reference snapshot "${snapshot.name_label}" destroyed`, { snapshot: snapshot.uuid })
    }
  }
}
