import { randomInt } from 'node:crypto'
import { chainOf, newestVhd } from '../../repository/chain.js'
import { checkBlocks, checksumsOf, legacyMismatch, readRecordedIntegrity } from '../../repository/integrity/index.js'
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
 * 5. no VHD of its chain holds damage a merge refused to fold in (`continuousDelta.damaged`), and
 *    that VHD still has the checksums recorded when it was written: its footer, header, BAT and
 *    locators, the block-checksum list itself (its digest in the metadata), and a few blocks
 *    picked at random. This costs the VHD's structure, not its size (a sidecar gone costs one
 *    read of the VHD, and is written back). Restore points written before block checksums are
 *    checked against their whole-VHD sha256, reading the VHD.
 * Otherwise the disk is exported full, and the run log says which check failed.
 */

/** blocks of the base read and checked before a delta is built on it */
export const BASE_SAMPLED_BLOCKS = 4
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
 * Why the VHD a delta would be based on cannot be trusted, if it no longer has the checksums
 * recorded when it was written; `undefined` when it has, or when none were recorded.
 */
async function checksumDamage(ctx: VmRunContext, path: string): Promise<string | undefined> {
  const damaged = (why: string) => `the newest VHD on the remote (${path}) is damaged: ${why}`
  try {
    const recorded = await readRecordedIntegrity(ctx.handler, ctx.vmUuid)
    // damage a merge refused to fold in, anywhere in the chain: never built upon
    for (const vhd of await chainOf(ctx.handler, path)) {
      const why = recorded.damaged?.get(vhd)
      if (why !== undefined) return `the chain of the newest VHD on the remote (${path}) holds damaged data a merge refused to fold in: ${vhd}: ${why}`
    }
    const integrity = await checksumsOf(ctx.handler, path, recorded, { repair: true, signal: ctx.signal })
    switch (integrity.status) {
      case 'damaged':
        return damaged(integrity.reason)
      case 'unrecorded':
        return undefined
      case 'legacy': {
        const why = await legacyMismatch(ctx.handler, path, integrity.recorded, ctx.signal)
        return why === undefined ? undefined : damaged(why)
      }
      case 'listed': {
        // a list recomputed from the VHD had the recorded digest: every block was just checked
        if (integrity.source === 'recomputed') return undefined
        const check = await checkBlocks(ctx.handler, path, integrity.list, { kind: 'count', count: BASE_SAMPLED_BLOCKS, seed: randomInt(2 ** 31) }, { signal: ctx.signal })
        if (check.damaged.length === 0) return undefined
        return damaged(check.damaged.map(b => `block ${b.id}: ${b.reason}`).join('; '))
      }
    }
  } catch (error) {
    ctx.signal.throwIfAborted()
    return `the newest VHD on the remote (${path}) cannot be read to check its checksums: ${(error as Error).message}`
  }
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
