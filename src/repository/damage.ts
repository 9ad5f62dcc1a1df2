/**
 * Damage a merge refused to fold in (merge/integrity.ts), recorded in the metadata of the restore
 * points whose restore reads it (`continuousDelta.damaged`): a damaged block is read by a restore
 * point when no newer VHD of its chain holds that block; damaged structures are read by every
 * restore point whose chain goes through the VHD. The next run does not build a delta on a chain
 * holding recorded damage (lifecycle/actions/choose-base.ts).
 */
import { chainOf } from './chain.js'
import type { MergeDamage } from './merge/index.js'
import { relativeToVmDir, resolveFromVmDir } from './layout.js'
import { updateMetadata, type BackupMetadata, type DamageRecord } from './metadata.js'
import type { RemoteHandler } from './remote-handler.js'
import { openVhd } from './vhd-lib.js'

interface DamagedVhd {
  /** undefined: its structures or list are damaged, every block counts */
  blocks: number[] | undefined
  reason: string
}

function byVhd(damage: readonly MergeDamage[]): Map<string, DamagedVhd> {
  const vhds = new Map<string, DamagedVhd>()
  for (const d of damage) {
    const known = vhds.get(d.vhd)
    if (known === undefined) vhds.set(d.vhd, { blocks: d.block === undefined ? undefined : [d.block], reason: d.reason })
    else if (d.block === undefined) vhds.set(d.vhd, { blocks: undefined, reason: d.reason })
    else known.blocks?.push(d.block)
  }
  return vhds
}

/** the ones of `blocks` that no VHD of `newer` holds */
async function notOverridden(handler: RemoteHandler, newer: readonly string[], blocks: readonly number[]): Promise<number[]> {
  let left = [...blocks]
  for (const path of newer) {
    if (left.length === 0) break
    const disposable = await openVhd(handler, path, { flags: 'r', checkSecondFooter: false })
    try {
      const vhd = disposable.value
      await vhd.readBlockAllocationTable()
      left = left.filter(id => id >= vhd.header.maxTableEntries || !vhd.containsBlock(id))
    } finally {
      await disposable.dispose()
    }
  }
  return left
}

/**
 * Records `damage` in the restore points among `files` (the VM's metadata) that read it; returns
 * their metadata paths. A restore point whose chain cannot be read is left alone (verify reports it).
 */
export async function recordDamage(
  handler: RemoteHandler,
  vm: string,
  files: readonly { readonly path: string; readonly metadata: BackupMetadata }[],
  damage: readonly MergeDamage[],
  foundAt = Date.now(),
): Promise<string[]> {
  const damaged = byVhd(damage)
  const affected: string[] = []
  for (const { path, metadata } of files) {
    if (metadata.continuousDelta === undefined) continue
    const records: DamageRecord[] = []
    for (const relative of Object.values(metadata.vhds)) {
      let chain: string[]
      try {
        chain = await chainOf(handler, resolveFromVmDir(vm, relative))
      } catch {
        continue
      }
      for (const [vhd, { blocks, reason }] of damaged) {
        const at = chain.indexOf(vhd)
        if (at === -1) continue
        const read = blocks === undefined ? undefined : await notOverridden(handler, chain.slice(at + 1), blocks)
        if (read !== undefined && read.length === 0) continue
        records.push({ vhd: relativeToVmDir(vm, vhd), ...(read === undefined ? {} : { blocks: read }), reason, foundAt })
      }
    }
    if (records.length === 0) continue
    affected.push(path)
    await updateMetadata(handler, path, current => {
      const extras = current.continuousDelta
      if (extras === undefined) return undefined
      const kept = (extras.damaged ?? []).filter(old => !records.some(record => record.vhd === old.vhd))
      return { ...current, continuousDelta: { ...extras, damaged: [...kept, ...records] } }
    })
  }
  return affected
}
