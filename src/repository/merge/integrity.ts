/**
 * Block checksums through a merge (the `check` and `checksums` steps, see state.ts).
 *
 * check: the trusted list of each VHD of the chain is found (integrity/trusted.ts, with the
 * digests the restore points recorded when the merge was planned); every block the merge copies
 * is read from the newest child holding it and checked against that child's list (a block the
 * newest child holds only in part: the parent's block and every older child's too, then composed
 * as the merge will compose it). The merged VHD's list is the parent's recorded checksums for the
 * blocks it keeps (not read: the cost follows the changed blocks), the newest holder's for a block
 * copied whole, the sha256 of the composed block otherwise; and the structures the merge writes.
 * A VHD whose structures or blocks differ from its list refuses the merge before anything changes.
 *
 * checksums: once the merged VHD has its final name, the restore points that use it record the
 * merged list's digest (first: a sidecar that is not the recorded one costs a recomputation that
 * finds the recorded digest, never a false "damaged"), then the sidecar is written, then the
 * sidecars of the VHDs merged away go.
 */
import { BackupError } from '../../errors.js'
import {
  BlockChecksums,
  BlockChecksumsBuilder,
  BlockChecksumsFormatError,
  checksumsOf,
  readRecordedIntegrity,
  recordBlockChecksums,
  removeSidecar,
  removeSidecarTemps,
  sha256,
  vmOfPath,
  writeSidecar,
  type RecordedIntegrity,
  type Structures,
} from '../integrity/index.js'
import { isUuid } from '../layout.js'
import type { RemoteHandler } from '../remote-handler.js'
import { openVhd, type Vhd } from '../vhd-lib.js'
import { composeBlock, geometryOf, isFullBitmap } from './blocks.js'
import { replaceFileAtomically } from './durable.js'
import { isMissing, throwIfAborted, type MergeRunOptions } from './options.js'
import { forEachConcurrently } from '../concurrency.js'
import { baseOf, mergeChecksumsPath, type MergeState } from './state.js'

/** blocks read at once while checking */
const CHECK_CONCURRENCY = 4

/** one damaged VHD or block found by a merge's check */
export interface MergeDamage {
  /** the VHD, from the remote root */
  readonly vhd: string
  /** the block, when one block is damaged (else the VHD's structures or checksum list) */
  readonly block?: number
  readonly reason: string
}

/** the error a merge refused for damage throws: nothing of the chain was changed */
export function mergeRefused(chain: readonly string[], damage: readonly MergeDamage[]): BackupError {
  const described = damage
    .slice(0, 5)
    .map(d => (d.block === undefined ? `${d.vhd}: ${d.reason}` : `block ${d.block} of ${d.vhd}: ${d.reason}`))
    .join('; ')
  const more = damage.length > 5 ? ` (and ${damage.length - 5} more)` : ''
  return new BackupError(
    'DATA_DAMAGED',
    `the merge of ${chain.slice(0, -1).join(', ')} into ${chain.at(-1)} was refused, nothing was changed: ${described}${more}`,
    { chain: [...chain], damage: damage.map(d => ({ ...d })), refused: true },
  )
}

/** whether `error` is a merge refused for damage (the chain is as it was) */
export function isMergeRefused(error: unknown): error is BackupError & { context: { chain: string[]; damage: MergeDamage[] } } {
  return error instanceof BackupError && error.code === 'DATA_DAMAGED' && (error.context as { refused?: unknown } | undefined)?.refused === true
}

/** the VM of a VHD inside a VM folder of the remote, undefined elsewhere (nothing records its checksums) */
export function vmOf(path: string): string | undefined {
  try {
    const vm = vmOfPath(path)
    return isUuid(vm) ? vm : undefined
  } catch {
    return undefined
  }
}

/** the digests the restore points record for each VHD of `chain`, by name (for the state file) */
export async function recordedDigestsOf(handler: RemoteHandler, chain: readonly string[], recorded?: RecordedIntegrity): Promise<Record<string, string>> {
  if (recorded === undefined) {
    const vm = vmOf(chain[0]!)
    if (vm === undefined) return {}
    recorded = await readRecordedIntegrity(handler, vm)
  }
  const digests: Record<string, string> = {}
  for (const path of chain) {
    const digest = recorded.digests.get(path)
    if (digest !== undefined) digests[baseOf(path)] = digest
  }
  return digests
}

/**
 * The trusted lists of the VHDs of `chain`; `undefined` when one has none (written before block
 * checksums, or without): such a merge is not checked and its result gets no list. Damage to a
 * VHD's structures or list is returned as such.
 */
export async function listsOfChain(
  handler: RemoteHandler,
  chain: readonly string[],
  digests: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): Promise<{ lists: BlockChecksums[] } | { damage: MergeDamage[] } | undefined> {
  const recorded: RecordedIntegrity = {
    digests: new Map(chain.flatMap(path => (digests[baseOf(path)] === undefined ? [] : [[path, digests[baseOf(path)]!] as const]))),
    legacy: new Map(),
  }
  const lists: BlockChecksums[] = []
  const damage: MergeDamage[] = []
  let unlisted = false
  for (const path of chain) {
    const integrity = await checksumsOf(handler, path, recorded, { repair: true, ...(signal === undefined ? {} : { signal }) })
    if (integrity.status === 'damaged') damage.push({ vhd: path, reason: integrity.reason })
    else if (integrity.status === 'listed') lists.push(integrity.list)
    else unlisted = true
  }
  if (damage.length > 0) return { damage }
  return unlisted ? undefined : { lists }
}

/**
 * Reads and checks every block the merge of `chain` copies; returns the merged VHD's list (with
 * `structures`, the merged VHD's as the merge writes them) or the damage found.
 */
export async function checkMergeBlocks(
  handler: RemoteHandler,
  chain: readonly string[],
  lists: readonly BlockChecksums[],
  result: { structures: Structures; maxTableEntries: number },
  opts: MergeRunOptions,
): Promise<{ list: BlockChecksums } | { damage: MergeDamage[] }> {
  const opened: { dispose(): unknown }[] = []
  const damage: MergeDamage[] = []
  try {
    const vhds: Vhd[] = []
    for (const path of chain) {
      const disposable = await openVhd(handler, path, { flags: 'r', checkSecondFooter: false })
      opened.push(disposable)
      await disposable.value.readBlockAllocationTable()
      vhds.push(disposable.value)
    }
    const [parent, ...children] = vhds
    const parentList = lists[0]!
    const geometry = geometryOf(parent!.header.blockSize)
    const builder = new BlockChecksumsBuilder({ blockSize: parent!.header.blockSize, maxTableEntries: result.maxTableEntries, parent: parentList.parent })
    for (const id of parentList.blockIds()) builder.addBlockChecksum(id, parentList.forBlock(id)!)

    const union: number[] = []
    for (let id = 0; id < result.maxTableEntries; id++) if (children.some(child => id < child.header.maxTableEntries && child.containsBlock(id))) union.push(id)

    /** block `id` of layer `i` (0: the parent), checked against its list; undefined when damaged */
    const readChecked = async (i: number, id: number): Promise<Buffer | undefined> => {
      const vhd = vhds[i]!
      let buffer: Buffer
      try {
        buffer = (await vhd.readBlock(id)).buffer
      } catch (error) {
        damage.push({ vhd: chain[i]!, block: id, reason: `unreadable: ${(error as Error).message}` })
        return undefined
      }
      if (!lists[i]!.verifyBlock(id, buffer)) {
        damage.push({
          vhd: chain[i]!,
          block: id,
          reason: lists[i]!.hasBlock(id) ? 'its sha256 differs from the one recorded when the VHD was written' : 'the VHD was written without this block',
        })
        return undefined
      }
      return buffer
    }

    await forEachConcurrently(union, CHECK_CONCURRENCY, async id => {
      throwIfAborted(opts.signal)
      const holders = children.flatMap((child, k) => (id < child.header.maxTableEntries && child.containsBlock(id) ? [k + 1] : []))
      const newest = holders.at(-1)!
      const buffer = await readChecked(newest, id)
      if (buffer === undefined) return
      if (isFullBitmap(buffer.subarray(0, geometry.bitmapSize), geometry)) {
        builder.addBlockChecksum(id, lists[newest]!.forBlock(id)!)
        return
      }
      // held in part: composed from the parent's block and every older holder's, all checked
      const inParent = id < parent!.header.maxTableEntries && parent!.containsBlock(id)
      const base = inParent ? await readChecked(0, id) : undefined
      if (inParent && base === undefined) return
      const layers: Buffer[] = []
      for (const k of holders.slice(0, -1)) {
        const layer = await readChecked(k, id)
        if (layer === undefined) return
        layers.push(layer)
      }
      builder.addBlockChecksum(id, sha256(composeBlock(base, [...layers, buffer], geometry)))
    })
    if (damage.length > 0) return { damage: damage.sort((a, b) => (a.vhd < b.vhd ? -1 : a.vhd > b.vhd ? 1 : (a.block ?? -1) - (b.block ?? -1))) }
    builder.setHashedStructures(result.structures)
    return { list: builder.build() }
  } finally {
    for (const disposable of opened) await Promise.resolve(disposable.dispose()).catch(() => undefined)
  }
}

/** the `check` step: finds the lists, checks the blocks, writes the merged list beside the state; throws `mergeRefused` on damage */
export async function runCheckStep(
  handler: RemoteHandler,
  statePath: string,
  state: MergeState,
  chain: readonly string[],
  structuresOf: (lists: readonly BlockChecksums[]) => Promise<{ structures: Structures; maxTableEntries: number }>,
  opts: MergeRunOptions,
): Promise<void> {
  const integrity = state.integrity
  if (integrity === undefined) return
  const found = await listsOfChain(handler, chain, integrity.digests, opts.signal)
  // some VHD of the chain has no checksums: the merged VHD gets none (`pending` stays false)
  if (found === undefined) return
  if ('damage' in found) throw mergeRefused(chain, found.damage)
  const checked = await checkMergeBlocks(handler, chain, found.lists, await structuresOf(found.lists), opts)
  if ('damage' in checked) throw mergeRefused(chain, checked.damage)
  await replaceFileAtomically(handler, mergeChecksumsPath(statePath), checked.list.serialize())
  integrity.pending = true
}

/**
 * The merged list written by the `check` step: `undefined` when the merge has none (a VHD of the
 * chain had no checksums, or the file is unreadable: then the merged VHD gets none); `done` when it
 * is gone while the state says it was written: a `checksums` step completed and its clean-up had
 * begun when the merge was interrupted.
 */
export async function readPendingList(handler: RemoteHandler, statePath: string, state: MergeState): Promise<BlockChecksums | undefined | 'done'> {
  if (state.integrity?.pending !== true) return undefined
  try {
    return BlockChecksums.parse(await handler.readFile(mergeChecksumsPath(statePath)))
  } catch (error) {
    if (isMissing(error)) return 'done'
    if (error instanceof BlockChecksumsFormatError) return undefined
    throw error
  }
}

/** the `checksums` step of the merge a state describes, into `mergedPath` (`gone`: the VHDs merged away) */
export async function runChecksumsStep(handler: RemoteHandler, statePath: string, state: MergeState, mergedPath: string, gone: readonly string[]): Promise<void> {
  if (state.integrity === undefined) return
  const list = await readPendingList(handler, statePath, state)
  if (list !== 'done') await recordMergedChecksums(handler, mergedPath, gone, list)
}

/**
 * The `checksums` step: the merged VHD at `mergedPath` gets `list` (metadata digest first, then
 * its sidecar), the VHDs merged away (`gone`) lose theirs. Without a list (a VHD of the chain had
 * none), the merged VHD's digest and sidecar are dropped: it is unchecked rather than "damaged".
 */
export async function recordMergedChecksums(handler: RemoteHandler, mergedPath: string, gone: readonly string[], list: BlockChecksums | undefined): Promise<void> {
  await recordBlockChecksums(handler, mergedPath, list)
  if (list === undefined) await removeSidecar(handler, mergedPath)
  else await writeSidecar(handler, mergedPath, list)
  for (const path of gone) await removeSidecar(handler, path)
  // what an interrupted sidecar write of an earlier attempt left
  for (const path of [mergedPath, ...gone]) await removeSidecarTemps(handler, path)
}
