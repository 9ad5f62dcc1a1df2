import { BackupError } from '../../errors.js'
import { backupOtherConfig, BACKUP_KEYS, setOtherConfig } from '../../xapi/other-config.js'
import { fetchDisks, fetchVdi, fetchVm } from '../../xapi/records.js'
import { blockMigration, destroyVdi, snapshotVm } from '../../xapi/snapshot.js'
import type { VmRunContext } from '../context.js'
import { findReferenceSnapshot, isExported } from '../reference-snapshot.js'
import { chooseRestorePointDate } from '../restore-point-date.js'

function requireVm(ctx: VmRunContext): NonNullable<VmRunContext['vm']> {
  if (ctx.vm === undefined) {
    throw new BackupError('VM_NOT_FOUND', `VM ${ctx.vmUuid} was not read`, { vm: ctx.vmUuid })
  }
  return ctx.vm
}

/**
 * Snapshots the VM without its excluded disks and tags the snapshot (VM and disks) with the
 * `xo:backup:*` keys. Migration stays blocked until `cleanup`. Where XAPI cannot leave disks out
 * of a snapshot, the snapshots of the excluded disks are destroyed right away, before anything
 * is transferred.
 */
export async function takeSnapshot(ctx: VmRunContext): Promise<void> {
  // a `snapshot` task, as XO's backup logs show one under the VM
  const task = ctx.reporter.child('snapshot')
  try {
    const snapshot = await snapshotAndTag(ctx)
    task.info(`snapshot "${snapshot.name_label}" taken`, { snapshot: snapshot.uuid, ignoreListSupported: snapshot.ignoreListSupported })
    task.end({ status: 'success', data: { id: snapshot.uuid, name_label: snapshot.name_label } })
  } catch (error) {
    task.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
    throw error
  }
}

async function snapshotAndTag(ctx: VmRunContext): Promise<{ readonly uuid: string; readonly name_label: string; readonly ignoreListSupported: boolean }> {
  const { xapi, job } = ctx
  const vm = requireVm(ctx)

  ctx.reference = await findReferenceSnapshot(xapi, vm, job.id)
  ctx.date = await chooseRestorePointDate(ctx.handler, ctx.vmUuid, new Date())
  const previousLength = Number(ctx.reference?.other_config[BACKUP_KEYS.deltaChainLength] ?? 0) || 0
  const tags = backupOtherConfig({
    date: ctx.date,
    jobId: job.id,
    scheduleId: job.scheduleId ?? '',
    vmUuid: vm.uuid,
    deltaChainLength: ctx.reference !== undefined && isExported(ctx.reference) ? previousLength + 1 : 0,
  })

  ctx.unblockMigration = await blockMigration(xapi, vm.$ref)
  const taken = await snapshotVm(
    xapi,
    vm.$ref,
    `[XO Backup ${job.name}] ${vm.name_label}`,
    ctx.excluded.map(disk => disk.ref)
  )
  ctx.snapshotRef = taken.ref
  await setOtherConfig(xapi, 'VM', taken.ref, tags)

  const excluded = new Set(ctx.excluded.map(disk => disk.ref))
  const snapshot = await fetchVm(xapi, taken.ref)
  for (const { vdi } of await fetchDisks(xapi, snapshot)) {
    if (excluded.has(vdi.snapshot_of)) {
      await destroyVdi(xapi, vdi.$ref)
      ctx.reporter.info(`snapshot of excluded disk "${vdi.name_label}" destroyed (this pool cannot leave disks out of a snapshot)`, {
        vdi: vdi.uuid,
      })
      continue
    }
    await setOtherConfig(xapi, 'VDI', vdi.$ref, tags)
    ctx.snapshotDisks.set(vdi.snapshot_of, await fetchVdi(xapi, vdi.$ref))
  }
  ctx.snapshot = await fetchVm(xapi, taken.ref)

  for (const disk of ctx.disks) {
    if (!ctx.snapshotDisks.has(disk.vdi.$ref)) {
      throw new BackupError('SNAPSHOT_FAILED', `snapshot ${taken.ref} holds no copy of disk "${disk.vdi.name_label}"`, {
        vm: vm.uuid,
        vdi: disk.vdi.uuid,
      })
    }
  }
  return { uuid: snapshot.uuid, name_label: snapshot.name_label, ignoreListSupported: taken.ignoreListSupported }
}
