import { newestVhd } from '../../repository/chain.js'
import { checkRecordedChecksum } from '../../repository/vhd-checksum.js'
import { fetchDisks } from '../../xapi/records.js'
import type { VdiRecord } from '../../xapi/records.js'
import type { Ref } from '../../xapi/client.js'
import type { DiskBase, SourceDisk, VmRunContext } from '../context.js'
import { warn } from '../context.js'
import { isExported } from '../reference-snapshot.js'

/**
 * A disk is exported as a delta only when the whole chain from the remote to the SR holds:
 * 1. the job's reference snapshot still exists on the pool,
 * 2. it was marked exported (its transfer and commit succeeded),
 * 3. it holds a snapshot of this very source disk,
 * 4. the newest readable VHD of the disk on the remote was exported from that snapshot (footer
 *    UUID = snapshot VDI uuid),
 * 5. that VHD still has the checksum recorded when it was transferred, when one was recorded.
 * Otherwise the disk is exported full, and the run log says which check failed.
 */
async function chooseDiskBase(ctx: VmRunContext, disk: SourceDisk, referenceDisks: ReadonlyMap<Ref, VdiRecord>): Promise<DiskBase> {
  const reference = ctx.reference
  if (reference === undefined) {
    const existing = await newestVhd(ctx.handler, ctx.vmUuid, ctx.job.id, disk.vdi.uuid)
    return existing === undefined
      ? { mode: 'full', reason: 'first export of this disk', firstExport: true }
      : { mode: 'full', reason: `no reference snapshot of job ${ctx.job.id} on the pool` }
  }
  if (!isExported(reference)) {
    return { mode: 'full', reason: `reference snapshot ${reference.uuid} was never marked exported` }
  }
  const base = referenceDisks.get(disk.vdi.$ref)
  if (base === undefined) {
    return { mode: 'full', reason: `reference snapshot ${reference.uuid} holds no snapshot of this disk` }
  }
  let unusable = ''
  const newest = await newestVhd(ctx.handler, ctx.vmUuid, ctx.job.id, disk.vdi.uuid, {
    onUnusable: problem => void (unusable = `: ${problem.path} is unusable (${problem.reason})`),
  })
  if (newest === undefined) {
    return { mode: 'full', reason: `no readable VHD of this disk on the remote${unusable}` }
  }
  if (newest.uuid !== base.uuid) {
    return {
      mode: 'full',
      reason: `the newest VHD on the remote (${newest.path}) was not exported from the reference snapshot (VHD ${newest.uuid}, snapshot disk ${base.uuid})`,
    }
  }
  const damage = await checksumDamage(ctx, newest.path)
  if (damage !== undefined) {
    return { mode: 'full', reason: damage }
  }
  return { mode: 'delta', baseVdi: base.$ref, parentPath: newest.path }
}

/**
 * Why the VHD a delta would be based on cannot be trusted, if its data no longer has the checksum
 * recorded when it was transferred; `undefined` when it has, or when none was recorded (a full
 * rewritten by a merge: its footer, header and chain were checked, its data is not).
 */
async function checksumDamage(ctx: VmRunContext, path: string): Promise<string | undefined> {
  let check
  try {
    check = await checkRecordedChecksum(ctx.handler, ctx.vmUuid, path, ctx.signal)
  } catch (error) {
    ctx.signal.throwIfAborted()
    return `the newest VHD on the remote (${path}) cannot be read to check its checksum: ${(error as Error).message}`
  }
  if (check.status !== 'mismatch') return undefined
  const { actual, recorded } = check
  return (
    `the newest VHD on the remote (${path}) is damaged: its sha256 ${actual.sha256} (${actual.size} bytes) ` +
    `differs from ${recorded.sha256} (${recorded.size} bytes) recorded when it was transferred`
  )
}

export async function chooseBases(ctx: VmRunContext): Promise<void> {
  const referenceDisks = new Map<Ref, VdiRecord>()
  if (ctx.reference !== undefined) {
    for (const { vdi } of await fetchDisks(ctx.xapi, ctx.reference)) {
      referenceDisks.set(vdi.snapshot_of, vdi)
    }
  }
  for (const disk of ctx.disks) {
    const base = await chooseDiskBase(ctx, disk, referenceDisks)
    ctx.bases.set(disk.vdi.$ref, base)
    if (base.mode === 'full' && base.firstExport === true) {
      ctx.reporter.info(`disk "${disk.vdi.name_label}": full export, ${base.reason}`, { vdi: disk.vdi.uuid })
    } else if (base.mode === 'full') {
      warn(ctx, `disk "${disk.vdi.name_label}": full export, ${base.reason}`, { vdi: disk.vdi.uuid })
    }
  }
}
