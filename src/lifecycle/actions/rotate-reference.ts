import { BACKUP_KEYS } from '../../xapi/other-config.js'
import { fetchVm } from '../../xapi/records.js'
import { cachedRecords, destroySnapshot, destroyVdi } from '../../xapi/snapshot.js'
import type { VmRunContext } from '../context.js'
import type { HousekeepingLog } from '../housekeeping.js'
import { warn } from '../context.js'
import { jobSnapshots } from '../reference-snapshot.js'

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The snapshot disks of the job for this VM that no VM holds any more (a run died between
 * destroying a snapshot VM and its disks): found by their tags, they are nobody's reference.
 */
function orphanDisks(ctx: VmRunContext): { ref: string; uuid: string; name: string }[] {
  // a disk plugged into the control domain (an export just ended) is held by no VM of ours
  const vms = new Set(cachedRecords(ctx.xapi, 'VM').filter(vm => vm.is_control_domain !== true).map(vm => vm.$ref))
  const vbdsOnAVm = new Set(cachedRecords(ctx.xapi, 'VBD').filter(vbd => vms.has(String(vbd.VM))).map(vbd => vbd.$ref))
  return cachedRecords(ctx.xapi, 'VDI')
    .filter(vdi => {
      const tags = vdi.other_config as Record<string, string> | undefined
      return (
        vdi.is_a_snapshot === true &&
        tags?.[BACKUP_KEYS.job] === ctx.job.id &&
        tags[BACKUP_KEYS.vm] === ctx.vmUuid &&
        !(vdi.VBDs as string[] | undefined ?? []).some(vbd => vbdsOnAVm.has(vbd))
      )
    })
    .map(vdi => ({ ref: vdi.$ref, uuid: vdi.uuid, name: String(vdi.name_label) }))
}

/**
 * The new snapshot becomes the job's only reference: every earlier snapshot of the job is
 * destroyed, and so are the job's snapshot disks of this VM that no snapshot holds any more. The
 * restore point is already committed: what cannot be destroyed now (after the XAPI client's
 * retries) is a warning, and the next run destroys it. Under a job (`ctx.housekeeping`), the
 * destroys go on while the run does (see housekeeping.ts); alone, the step waits for them.
 */
export async function rotateReference(ctx: VmRunContext): Promise<void> {
  if (ctx.vm === undefined || ctx.snapshotRef === undefined) {
    return
  }
  const vmRef = ctx.vm.$ref
  const keep = ctx.snapshotRef
  const destroyEarlier = async (log: HousekeepingLog): Promise<void> => {
    await ctx.xapi.barrier?.().catch(() => {})
    try {
      const vm = await fetchVm(ctx.xapi, vmRef)
      for (const snapshot of await jobSnapshots(ctx.xapi, vm, ctx.job.id)) {
        if (snapshot.$ref === keep) {
          continue
        }
        try {
          await destroySnapshot(ctx.xapi, snapshot.$ref)
          log.info(`previous reference snapshot "${snapshot.name_label}" destroyed`, { snapshot: snapshot.uuid })
        } catch (error) {
          log.warning(`previous reference snapshot "${snapshot.name_label}" (${snapshot.uuid}) not destroyed yet, the next run will: ${describe(error)}`)
        }
      }
      for (const orphan of orphanDisks(ctx)) {
        try {
          await destroyVdi(ctx.xapi, orphan.ref)
          log.info(`orphaned snapshot disk "${orphan.name}" destroyed`, { vdi: orphan.uuid })
        } catch (error) {
          log.warning(`orphaned snapshot disk "${orphan.name}" (${orphan.uuid}) not destroyed yet, the next run will: ${describe(error)}`)
        }
      }
    } catch (error) {
      log.warning(`previous reference snapshots not rotated, the next run will: ${describe(error)}`)
    }
  }
  if (ctx.housekeeping !== undefined) {
    ctx.housekeeping.start(destroyEarlier)
    return
  }
  await destroyEarlier({ info: (message, data) => ctx.reporter.info(message, data), warning: (message, data) => warn(ctx, message, data) })
}
