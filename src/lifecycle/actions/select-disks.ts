import { BackupError } from '../../errors.js'
import { fetchDisks, fetchVm, refOfUuid } from '../../xapi/records.js'
import { reattachDetachedDrives } from '../../xapi/snapshot.js'
import { xapiErrorCode } from '../../xapi/xapi-error.js'
import type { VmRunContext } from '../context.js'

/**
 * Every disk of the VM is a candidate; CD drives and empty drives are never backed up. Drives an
 * interrupted run detached for its snapshot are put back first.
 */
export async function selectDisks(ctx: VmRunContext): Promise<void> {
  let ref: string
  try {
    ref = await refOfUuid(ctx.xapi, 'VM', ctx.vmUuid)
  } catch (error) {
    if (xapiErrorCode(error) === 'UUID_INVALID' || xapiErrorCode(error) === 'HANDLE_INVALID') {
      throw new BackupError('VM_NOT_FOUND', `no VM ${ctx.vmUuid} on its pool`, { vm: ctx.vmUuid }, { cause: error })
    }
    throw error
  }
  const reattached = await reattachDetachedDrives(ctx.xapi, ref, ctx.vmUuid)
  if (reattached > 0) {
    ctx.reporter.warning(`${reattached} drive(s) an interrupted run had detached for its snapshot were put back`, { reattached })
  }
  ctx.vm = await fetchVm(ctx.xapi, ref)
  ctx.disks = await fetchDisks(ctx.xapi, ctx.vm)
}
