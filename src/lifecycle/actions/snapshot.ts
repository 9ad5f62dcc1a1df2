import { BackupError } from '../../errors.js'
import { backupOtherConfig, BACKUP_KEYS, setOtherConfig } from '../../xapi/other-config.js'
import { fetchDisks, fetchVdi, fetchVm } from '../../xapi/records.js'
import { blockMigration, blockReasonOf, destroyVdi, snapshotVm, type TakenSnapshot } from '../../xapi/snapshot.js'
import type { RunReporter } from '../job.js'
import type { VmRunContext } from '../context.js'
import { warn } from '../context.js'
import { findReferenceSnapshot, isExported } from '../reference-snapshot.js'
import { chooseRestorePointDate } from '../restore-point-date.js'

function requireVm(ctx: VmRunContext): NonNullable<VmRunContext['vm']> {
  if (ctx.vm === undefined) {
    throw new BackupError('VM_NOT_FOUND', `VM ${ctx.vmUuid} was not read`, { vm: ctx.vmUuid })
  }
  return ctx.vm
}

function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`
}

/**
 * Snapshots the VM without its excluded disks and tags the snapshot (VM and disks) with the
 * `xo:backup:*` keys. Migration stays blocked until `cleanup` (blocks a dead run of the job left
 * are lifted first). Excluded disks are never snapshotted where the pool can avoid it: with
 * `VM.snapshot`'s ignore list (8.3 on), or for a halted VM by detaching their drives for the
 * snapshot. A running VM on an older pool is snapshotted with them: their snapshots are
 * destroyed right away, before anything is transferred, and the run's warning says what it cost.
 */
export async function takeSnapshot(ctx: VmRunContext): Promise<void> {
  // a `snapshot` task, as XO's backup logs show one under the VM
  const task = ctx.reporter.child('snapshot')
  try {
    const snapshot = await snapshotAndTag(ctx, task)
    task.info(`snapshot "${snapshot.name_label}" taken`, { snapshot: snapshot.uuid, excludedDisks: snapshot.excludedDisks })
    task.end({ status: 'success', data: { id: snapshot.uuid, name_label: snapshot.name_label } })
  } catch (error) {
    task.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
    throw error
  }
}

/**
 * The snapshot task's progress, by its milestones: the migration blocked (10), the snapshot
 * taken (60), each of its disks tagged (up to 95).
 */
async function snapshotAndTag(ctx: VmRunContext, task: RunReporter): Promise<{ readonly uuid: string; readonly name_label: string; readonly excludedDisks: TakenSnapshot['ignoredBy'] }> {
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

  task.progress(0)
  const block = await blockMigration(xapi, vm.$ref, job.id)
  ctx.unblockMigration = block.lift
  task.progress(10)
  if (block.stale.length > 0) {
    ctx.reporter.info(`migration blocks left by an interrupted run lifted: ${block.stale.join(', ')}`, { operations: block.stale })
  }
  const current = await fetchVm(xapi, vm.$ref)
  const taken = await snapshotVm(
    xapi,
    current,
    `[XO Backup ${job.name}] ${vm.name_label}`,
    ctx.excluded.map(disk => ({ vbd: disk.vbd, vdi: disk.ref })),
    blockReasonOf(job.id)
  )
  ctx.snapshotRef = taken.ref
  task.progress(60)
  await setOtherConfig(xapi, 'VM', taken.ref, tags)

  const excluded = new Set(ctx.excluded.map(disk => disk.ref))
  const snapshot = await fetchVm(xapi, taken.ref)
  const destroyed: string[] = []
  let cost = 0
  const snapshotDisks = await fetchDisks(xapi, snapshot)
  for (const [index, { vdi }] of snapshotDisks.entries()) {
    task.progress(60 + (35 * index) / snapshotDisks.length)
    if (excluded.has(vdi.snapshot_of)) {
      await destroyVdi(xapi, vdi.$ref)
      destroyed.push(`"${vdi.name_label}"`)
      cost += vdi.virtual_size
      continue
    }
    await setOtherConfig(xapi, 'VDI', vdi.$ref, tags)
    ctx.snapshotDisks.set(vdi.snapshot_of, await fetchVdi(xapi, vdi.$ref))
  }
  if (destroyed.length > 0) {
    const pool = ctx.pool === undefined ? 'this pool' : `${ctx.pool.productBrand} ${ctx.pool.productVersion}`.trim()
    warn(
      ctx,
      `${pool} cannot leave disks out of the snapshot of a running VM: the excluded disk(s) ${destroyed.join(', ')} were ` +
        `snapshotted with it and their snapshots destroyed before any transfer; for that moment the SR needed up to ` +
        `${formatSize(cost)} more (their whole size on a thick-provisioned SR). Halting the VM for its backup, or ` +
        `XCP-ng / XenServer 8.3, avoids it.`,
      { excluded: destroyed.length, bytes: cost }
    )
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
  return { uuid: snapshot.uuid, name_label: snapshot.name_label, excludedDisks: taken.ignoredBy }
}
