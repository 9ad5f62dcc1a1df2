import type { BackupError } from '../../errors.js'
import { destroySnapshot } from '../../xapi/snapshot.js'
import type { VmRunContext } from '../context.js'
import { removeVhd } from '../remove-vhd.js'

/**
 * Always runs. After a failure: destroys the snapshot this run took (unless it already became
 * the reference) and removes the VHDs it wrote (unless a restore point refers to them). The
 * previous reference snapshot and every earlier restore point are never touched here. In every
 * case, lifts the migration block. Each undo is attempted even if another one fails.
 */
export async function cleanUp(ctx: VmRunContext, failure?: BackupError): Promise<void> {
  const undo: (() => Promise<void>)[] = []
  if (failure !== undefined && !ctx.exported && ctx.snapshotRef !== undefined) {
    const ref = ctx.snapshotRef
    undo.push(() => destroySnapshot(ctx.xapi, ref))
  }
  if (failure !== undefined && ctx.restorePoint === undefined) {
    for (const path of ctx.written.values()) {
      undo.push(() => removeVhd(ctx.handler, path))
    }
  }
  if (ctx.unblockMigration !== undefined) {
    undo.push(ctx.unblockMigration)
  }

  let first: unknown
  for (const step of undo) {
    try {
      await step()
    } catch (error) {
      first ??= error
      ctx.reporter.warning(`cleanup: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  if (first !== undefined) {
    throw first
  }
}
