/**
 * Retention of one VM's restore points for one job, as Xen Orchestra does it:
 *
 * 1. interrupted merges of the job's disk folders are finished (`resumeMerges`);
 * 2. restore points beyond `keep` (oldest first) lose their `.json`: from then on they are gone;
 * 3. per disk, the VHDs no `.json` references any more:
 *    - those that precede a referenced VHD in its chain are merged into the oldest referenced
 *      one, which becomes the new full under its own name (`mergeChain`); those between two
 *      referenced VHDs (a restore point deleted on request) are merged into the next referenced
 *      one, which keeps its name and becomes a delta of the previous one, as Xen Orchestra's
 *      clean-up merges an unused delta into its child;
 *    - those with no referenced descendant are deleted (newest first);
 *    - leftovers of interrupted writes (hidden temporary VHD files, VHD directories no alias
 *      points to) are removed.
 *
 * Only restorable restore points count toward `keep`: one whose metadata is damaged, whose
 * chain is broken or whose data a merge found damaged (`continuousDelta.damaged`) is reported
 * (`unrestorable`), never deleted, and never makes a good one go early; metadata of another tool
 * is ignored (`foreign`). A point with recorded data damage keeps its VHDs, unmerged, until it is
 * deleted on request (`drop`): an explicit restore still reads its undamaged blocks.
 *
 * Every decision is derived from the files on the remote, so the function is idempotent and a
 * crash at any point is finished by the next call. Call it holding the VM's chain lock, after
 * the run's metadata is committed (a VHD without its `.json` yet would look unreferenced).
 *
 * A merge checks every block it folds in against its VHD's block checksums (the digests the
 * metadata recorded before step 2 removed any) and records the merged VHD's own list; a whole-VHD
 * checksum of restore points written before block checksums is dropped from the `.json` before
 * the merge starts, and the merged VHD is marked full after.
 */
import { posix } from 'node:path'
import { BackupError } from '../errors.js'
import { ChainChecker, ListedChains, mixesFormats, readVhdInfo, listDiskVhds, type VhdInfo } from './chain.js'
import {
  assertSafeId,
  isMetadataTempName,
  isUuid,
  isVhdTempName,
  jobDisksDir,
  timestampOfName,
  normalizePath,
  relativeToVmDir,
  resolveFromVmDir,
  vmDir,
} from './layout.js'
import { removeSidecar } from './integrity/sidecar.js'
import { recordedIntegrityOf } from './integrity/trusted.js'
import { recordDamage } from './damage.js'
import { checkMerge, isMergeRefused, mergeChain, resumeMerges, type MergeDamage, type MergeResult } from './merge/index.js'
import { isMergeStateName, listXoMergeStates } from './merge/state.js'
import { invalidateMetadataCache, updateMetadata, type BackupMetadata } from './metadata.js'
import { readVmMetadataFiles, recordedDamageOf, restorePointOf, unrestorableReason } from './restore-points.js'
import type { RemoteHandler } from './remote-handler.js'
import { VhdAbstract, isVhdAlias, resolveVhdAlias } from './vhd-lib.js'

export type DiskMergeResult = MergeResult & { vdi: string }

export interface RetentionOptions {
  readonly vm: string
  readonly jobId: string
  /** restore points kept (>= 1); `Infinity`: no count limit (only `drop` removes points) */
  readonly keep: number
  /** metadata paths of restore points of this job to remove whatever their age (one point deleted on request) */
  readonly drop?: readonly string[]
  onMerge?(result: DiskMergeResult): void
  /** a merge's progress: blocks merged so far out of those it moves, on one disk */
  onMergeProgress?(vdi: string, done: number, total: number): void
  readonly signal?: AbortSignal
}

export interface RetentionResult {
  /** metadata paths of the restore points removed */
  readonly removed: string[]
  readonly merges: DiskMergeResult[]
  /** how many of `merges` (the first ones) finished a merge an earlier call was interrupted in */
  readonly resumed: number
  /** VHDs and leftovers deleted */
  readonly deleted: string[]
  /**
   * disk folders left as they are because an interrupted merge of Xen Orchestra's own is pending
   * in them on VHDs this retention would merge or delete; the next call does it once Xen
   * Orchestra finished its merge
   */
  readonly deferred: { readonly dir: string; readonly statePath: string; readonly message: string }[]
  /**
   * restore points of the job (or of no known job) that cannot be restored: metadata unreadable
   * or invalid, a VHD of the chain missing, truncated or unreadable, data damage recorded by a
   * merge. Not counted toward `keep`, never deleted (the user decides); while they are not older
   * than every restore point kept (those with recorded data damage: always), their VHDs are kept too
   */
  readonly unrestorable: { readonly path: string; readonly reason: string }[]
  /** chains not merged because they mix VHD files and VHD directories (written by earlier versions) */
  readonly unmerged: { readonly dir: string; readonly message: string }[]
  /** metadata files of another tool or backup mode (Xen Orchestra's full backups): left alone */
  readonly foreign: { readonly path: string; readonly reason: string }[]
  /**
   * merges refused because a VHD they would fold in is damaged (present only when one was): the
   * chain is kept as it is (more than retention needs), the restore points reading the damage
   * record it (`continuousDelta.damaged`), and no delta is built on that chain any more
   */
  readonly damagedData?: { readonly vdi: string; readonly vhds: string[]; readonly restorePoints: string[]; readonly message: string }[]
}

interface MetadataFile {
  readonly path: string
  readonly metadata: BackupMetadata
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BackupError('CANCELLED', 'retention cancelled', {}, { cause: signal.reason })
}

/** VHD path (from the remote root) → the metadata files (and their VDI refs) that reference it */
function referencesOf(vm: string, files: readonly MetadataFile[]): Map<string, { path: string; ref: string }[]> {
  const refs = new Map<string, { path: string; ref: string }[]>()
  for (const { path, metadata } of files) {
    for (const [ref, relative] of Object.entries(metadata.vhds)) {
      const vhd = resolveFromVmDir(vm, relative)
      const list = refs.get(vhd) ?? []
      list.push({ path, ref })
      refs.set(vhd, list)
    }
  }
  return refs
}

/** drops the transfer checksum of `vhd` and, once it is a full, its delta flag */
async function markRewritten(
  handler: RemoteHandler,
  vm: string,
  vhd: string,
  users: readonly { path: string; ref: string }[],
  isFull: boolean,
): Promise<void> {
  const relative = relativeToVmDir(vm, vhd)
  for (const { path, ref } of users) {
    await updateMetadata(handler, path, metadata => {
      const checksums = { ...(metadata.continuousDelta?.checksums ?? {}) }
      const hadChecksum = relative in checksums
      delete checksums[relative]
      const flip = isFull && metadata.isVhdDifferencing[ref] === true
      if (!hadChecksum && !flip) return undefined
      return {
        ...metadata,
        isVhdDifferencing: flip ? { ...metadata.isVhdDifferencing, [ref]: false } : metadata.isVhdDifferencing,
        ...(metadata.continuousDelta === undefined ? {} : { continuousDelta: { ...metadata.continuousDelta, checksums } }),
      }
    })
  }
}

/** VHD path (from the remote root) → whether a metadata file names it as a delta */
function deltaFlagsOf(vm: string, files: readonly MetadataFile[]): Map<string, boolean> {
  const flags = new Map<string, boolean>()
  for (const { metadata } of files) {
    for (const [ref, relative] of Object.entries(metadata.vhds)) flags.set(resolveFromVmDir(vm, relative), metadata.isVhdDifferencing[ref] === true)
  }
  return flags
}

interface DiskPlan {
  /** chains to merge: unreferenced VHDs, oldest (a full, or a delta of a referenced VHD) first, then the first referenced one */
  readonly merges: string[][]
  /** unreferenced VHDs without a referenced descendant, newest first */
  readonly deletions: string[]
}

/** what retention does in one disk folder, from the VHDs' headers and the references */
export function planDisk(vhds: readonly string[], infos: ReadonlyMap<string, VhdInfo | undefined>, referenced: (path: string) => boolean): DiskPlan {
  const children = new Map<string, string[]>()
  for (const path of vhds) {
    const parent = infos.get(path)?.parent?.path
    if (parent !== undefined && infos.has(parent)) children.set(parent, [...(children.get(parent) ?? []), path])
  }
  const usedBelow = new Map<string, boolean>()
  const hasReferencedDescendant = (path: string): boolean => {
    const known = usedBelow.get(path)
    if (known !== undefined) return known
    usedBelow.set(path, false) // guards against loops
    const used = (children.get(path) ?? []).some(child => referenced(child) || hasReferencedDescendant(child))
    usedBelow.set(path, used)
    return used
  }

  const merges: string[][] = []
  for (const root of vhds) {
    const info = infos.get(root)
    if (info === undefined || referenced(root)) continue
    // a run of unreferenced VHDs starts at a full, or at a delta whose parent a restore point
    // uses (a restore point deleted between two others): the run and its first referenced
    // descendant become one VHD under that descendant's name, still a delta of that parent
    const parent = info.parent?.path
    if (parent !== undefined && !(infos.get(parent) !== undefined && referenced(parent))) continue
    const chain = [root]
    let current = root
    // follow a straight line of unreferenced VHDs down to the first referenced one
    while (!referenced(current)) {
      const next = children.get(current) ?? []
      if (next.length !== 1) break
      current = next[0]!
      chain.push(current)
    }
    if (referenced(current) && chain.length > 1) merges.push(chain)
  }
  const deletions = vhds.filter(path => !referenced(path) && !hasReferencedDescendant(path)).reverse()
  return { merges, deletions }
}

async function readInfos(handler: RemoteHandler, vhds: readonly string[]): Promise<Map<string, VhdInfo | undefined>> {
  const infos = new Map<string, VhdInfo | undefined>()
  for (const path of vhds) {
    infos.set(path, await readVhdInfo(handler, path).catch(() => undefined))
  }
  return infos
}

/** hidden temporary VHD files and VHD directories no alias points to (when no merge is pending) */
async function removeLeftovers(handler: RemoteHandler, dir: string, vhds: readonly string[]): Promise<string[]> {
  const removed: string[] = []
  const names = await handler.list(dir, { ignoreMissing: true })
  if (names.some(isMergeStateName)) return removed
  for (const name of names.filter(isVhdTempName)) {
    await handler.unlink(`${dir}/${name}`)
    removed.push(`${dir}/${name}`)
  }
  if (!names.includes('data')) return removed
  const data = await handler.list(`${dir}/data`, { ignoreMissing: true })
  // each VHD directory where its alias usually points (`data/<name>.vhd`): none is a leftover,
  // and no alias needs reading
  const usual = new Set(vhds.filter(isVhdAlias).map(alias => posix.basename(alias).replace(/\.alias\.vhd$/, '.vhd')))
  if (data.every(name => usual.has(name))) return removed
  const targets = new Set<string>()
  for (const alias of vhds.filter(isVhdAlias)) {
    try {
      targets.add(normalizePath(await resolveVhdAlias(handler, alias)))
    } catch {
      // an unreadable alias protects nothing; verify reports it
    }
  }
  for (const name of data) {
    const path = `${dir}/data/${name}`
    if (!targets.has(path)) {
      await handler.rmtree(path)
      removed.push(path)
    }
  }
  return removed
}

/** what retention sees of a VM's restore points, and what it would remove, before it removes anything */
interface RetentionView {
  readonly foreign: { readonly path: string; readonly reason: string }[]
  /** the restore points retention removes (past `keep`, or dropped), oldest first */
  readonly past: MetadataFile[]
  /** the usable metadata files left once `past` is gone */
  readonly remaining: MetadataFile[]
  /** the digests of the VHDs recorded by every usable metadata file, `past` included */
  readonly recorded: ReturnType<typeof recordedIntegrityOf>
  readonly unrestorable: { readonly path: string; readonly reason: string }[]
  /** VHD path → the metadata files left (and their VDI refs) that reference it */
  readonly references: Map<string, { path: string; ref: string }[]>
  /** whether a restore point left (or a damaged metadata file's date) still needs the VHD */
  readonly referenced: (path: string) => boolean
  /** the restore points of the job whose data damage a merge recorded */
  readonly withDataDamage: ReadonlySet<string>
  /** the VHDs those read: nothing is merged into them */
  readonly damagedTargets: ReadonlySet<string>
  /** the disk folders as listed when the restore points were classified */
  readonly listed: ListedChains
}

async function viewOf(handler: RemoteHandler, vm: string, jobId: string, keep: number, drop: readonly string[]): Promise<RetentionView> {
  const classified = await readVmMetadataFiles(handler, vm)
  const foreign = classified.filter(file => file.status === 'foreign').map(({ path, reason }) => ({ path, reason }))
  const files: MetadataFile[] = classified.flatMap(file => (file.status === 'usable' ? [{ path: file.path, metadata: file.metadata }] : []))
  const byDate = (a: MetadataFile, b: MetadataFile) => a.metadata.timestamp - b.metadata.timestamp || (a.path < b.path ? -1 : 1)
  const ofJob = files.filter(file => file.metadata.jobId === jobId).sort(byDate)
  // Which restore points can be restored, from the disk folders' listings first (one per folder,
  // no VHD opened: `ListedChains`); what a listing shows wrong is confirmed by reading the VHDs'
  // footers and headers (`ChainChecker`), and so is every chain counted when the count removes a
  // restore point. A pass that removes nothing opens no VHD: a truncated or overwritten VHD it
  // does not see is caught before it matters, by the pass that would remove a restore point
  // because of it, by the merge that opens what it folds in, by the run's base check (the whole
  // newest chain), by `verify` and by every restore.
  const listed = new ListedChains(handler, deltaFlagsOf(vm, files))
  const checker = new ChainChecker(handler)
  const broken = new Map<string, string>()
  const classify = async (file: MetadataFile, thorough: boolean) => {
    let reason: string | undefined
    try {
      const point = restorePointOf(file.path, file.metadata)
      reason = thorough || (await unrestorableReason(point, listed)) !== undefined ? await unrestorableReason(point, checker) : undefined
    } catch (error) {
      reason = (error as Error).message
    }
    // data damage a merge found and recorded: the chain reads, but the restore fails DATA_DAMAGED
    reason ??= recordedDamageOf(file.metadata)
    if (reason !== undefined) broken.set(file.path, reason)
  }
  for (const file of ofJob) await classify(file, false)
  // restore points holding recorded data damage keep their VHDs as long as their metadata is
  // there: an explicit restore (`allowDamaged`) still reads every undamaged block of them
  const withDataDamage = new Set(ofJob.filter(file => recordedDamageOf(file.metadata) !== undefined).map(file => file.path))
  // the digests of the VHDs about to be merged are in the metadata retention removes
  const recorded = recordedIntegrityOf(vm, files.map(file => file.metadata))
  const dropped = new Set(drop)
  const counted = () => ofJob.filter(file => !dropped.has(file.path) && !broken.has(file.path))
  if (counted().length > keep) for (const file of counted()) await classify(file, true)
  const kept = counted()
  const past = [...ofJob.filter(file => dropped.has(file.path)), ...kept.slice(0, Math.max(0, kept.length - keep))]
  const gone = new Set(past.map(file => file.path))
  const remaining = files.filter(file => !gone.has(file.path))
  // an unrestorable restore point keeps its VHDs while it is not older than every restore point
  // kept: nothing it may still hold goes early, yet it cannot hold a chain past the retention
  const oldestKept = kept.find(file => !gone.has(file.path))?.metadata.timestamp
  const inWindow = (timestamp: number | undefined) => oldestKept === undefined || timestamp === undefined || timestamp >= oldestKept
  const damaged = classified.flatMap(file => (file.status === 'damaged' && (file.jobId === undefined || file.jobId === jobId) ? [file] : []))
  const unrestorable = [
    ...damaged.map(({ path, reason }) => ({ path, reason })),
    ...ofJob.flatMap(file => (broken.has(file.path) && !gone.has(file.path) ? [{ path: file.path, reason: broken.get(file.path)! }] : [])),
  ].sort((a, b) => (a.path < b.path ? -1 : 1))
  const references = referencesOf(
    vm,
    remaining.filter(file => !broken.has(file.path) || withDataDamage.has(file.path) || inWindow(file.metadata.timestamp)),
  )
  // VHDs a restore point with recorded data damage reads: nothing is merged into them (the merge
  // would fold the damage in, or be refused again at every run)
  const damagedTargets = new Set([...referencesOf(vm, remaining.filter(file => withDataDamage.has(file.path))).keys()])
  // the VHDs of a damaged metadata file cannot be read from it: those named after its date
  const pinnedNames = new Set(damaged.filter(file => inWindow(file.timestamp)).map(file => posix.basename(file.path, '.json')))
  const referenced = (path: string) => references.has(path) || pinnedNames.has(timestampOfName(posix.basename(path)) ?? '')
  return { foreign, past, remaining, recorded, unrestorable, references, referenced, withDataDamage, damagedTargets, listed }
}

export async function enforceRetention(handler: RemoteHandler, opts: RetentionOptions): Promise<RetentionResult> {
  const vm = assertSafeId('vm', opts.vm)
  const jobId = assertSafeId('job', opts.jobId)
  const { keep, signal } = opts
  if (keep !== Infinity && (!Number.isInteger(keep) || keep < 1)) {
    throw new BackupError('INVALID_PARAMETER', `retention must keep at least one restore point, got ${keep}`, { vm })
  }
  const merges: DiskMergeResult[] = []
  const removed: string[] = []
  const deleted: string[] = []
  const deferred: RetentionResult['deferred'][number][] = []
  const unmerged: RetentionResult['unmerged'][number][] = []
  const damagedData: NonNullable<RetentionResult['damagedData']>[number][] = []
  const recordMerge = (result: MergeResult, vdi: string) => {
    const entry = { ...result, vdi }
    merges.push(entry)
    opts.onMerge?.(entry)
  }

  const jobDir = jobDisksDir(vm, jobId)
  const vdis = (await handler.list(jobDir, { ignoreMissing: true })).filter(isUuid).sort()

  // 1. interrupted merges first: they complete a plan an earlier call already committed to
  for (const vdi of vdis) {
    throwIfAborted(signal)
    for (const result of await resumeMerges(handler, `${jobDir}/${vdi}`, signal === undefined ? {} : { signal })) recordMerge(result, vdi)
  }
  const resumed = merges.length

  // 2. restorable restore points beyond `keep` lose their metadata
  const view = await viewOf(handler, vm, jobId, keep, opts.drop ?? [])
  const { foreign, recorded, unrestorable, references, referenced, withDataDamage, damagedTargets } = view
  for (const { path } of view.past) {
    throwIfAborted(signal)
    await handler.unlink(path)
    await invalidateMetadataCache(handler, path)
    removed.push(path)
  }
  const files = view.remaining

  // 3. per disk: merge what precedes a referenced VHD, delete what nothing needs
  for (const vdi of vdis) {
    throwIfAborted(signal)
    const dir = `${jobDir}/${vdi}`
    const mergesBefore = merges.length
    const vhds = await listDiskVhds(handler, dir)
    // with every VHD referenced there is nothing to merge or delete: no header needs reading
    const infos = vhds.every(referenced) ? undefined : await readInfos(handler, vhds)
    const plan = infos === undefined ? { merges: [], deletions: [] } : planDisk(vhds, infos, referenced)
    const xoMerge = await xoMergeInTheWay(handler, dir, plan)
    if (xoMerge !== undefined) {
      deferred.push({
        dir,
        statePath: xoMerge.statePath,
        message:
          `disk ${vdi}: Xen Orchestra's own interrupted merge (${xoMerge.statePath}) is pending on VHDs retention would merge or ` +
          `delete; they are left as they are until the next run of Xen Orchestra's backup job of this VM (or its clean-up) finishes it`,
      })
      continue
    }
    for (const chain of plan.merges) {
      throwIfAborted(signal)
      const target = chain.at(-1)!
      if (mixesFormats(chain)) {
        // no merge folds VHD files into a VHD directory: the chain is kept as it is (it restores),
        // the next run starts a new chain, and this one goes once no kept restore point needs it
        unmerged.push({ dir, message: `disk ${vdi}: ${chain.join(', ')} mix VHD files and VHD directories and are not merged; they are kept until no restore point kept needs them` })
        continue
      }
      if (damagedTargets.has(target)) {
        const points = (references.get(target) ?? []).filter(user => withDataDamage.has(user.path)).map(user => user.path)
        unmerged.push({
          dir,
          message:
            `disk ${vdi}: ${chain.slice(0, -1).join(', ')} not merged into ${target}: restore point${points.length === 1 ? '' : 's'} ${points.join(', ')} ` +
            `holding recorded data damage read${points.length === 1 ? 's' : ''} it; kept as it is until that restore point is deleted`,
        })
        continue
      }
      const users = references.get(target) ?? []
      await markRewritten(handler, vm, target, users, false)
      const onProgress = opts.onMergeProgress === undefined ? undefined : (done: number, total: number) => opts.onMergeProgress?.(vdi, done, total)
      try {
        recordMerge(
          await mergeChain(handler, chain, { recorded, ...(signal === undefined ? {} : { signal }), ...(onProgress === undefined ? {} : { onProgress }) }),
          vdi,
        )
      } catch (error) {
        if (!isMergeRefused(error)) throw error
        damagedData.push(await refusedMerge(handler, vm, vdi, files, error.context.damage))
        continue
      }
      // merged from a full it is a full; from a delta (a restore point deleted between two others), a delta still
      await markRewritten(handler, vm, target, users, infos?.get(chain[0]!)?.parent === undefined)
    }
    for (const path of plan.deletions) {
      throwIfAborted(signal)
      await VhdAbstract.unlink(handler, path)
      await removeSidecar(handler, path)
      deleted.push(path)
    }
    // a merge finished by an earlier call that stopped before updating the metadata
    const markedDelta = (user: { path: string; ref: string }) =>
      files.find(file => file.path === user.path)?.metadata.isVhdDifferencing[user.ref] === true
    // (only a VHD marked delta whose parent the listing does not show can be one: its header says)
    // (a folder where nothing was merged nor deleted is listed as it was)
    const changed = merges.length > mergesBefore || plan.deletions.length > 0
    const now = changed ? await listDiskVhds(handler, dir) : vhds
    const after = changed ? new ListedChains(handler, deltaFlagsOf(vm, files)) : view.listed
    for (const path of now.filter(referenced)) {
      const users = references.get(path) ?? []
      if (!users.some(markedDelta) || (await after.problemOf(path)) === undefined) continue
      const info = await readVhdInfo(handler, path).catch(() => undefined)
      if (info !== undefined && info.parent === undefined) await markRewritten(handler, vm, path, users, true)
    }
    deleted.push(...(await removeLeftovers(handler, dir, changed ? await listDiskVhds(handler, dir) : vhds)))
  }
  // hidden temporary metadata files of interrupted writes
  for (const name of await handler.list(vmDir(vm), { ignoreMissing: true })) {
    if (isMetadataTempName(name)) {
      await handler.unlink(`${vmDir(vm)}/${name}`)
      deleted.push(posix.join(vmDir(vm), name))
    }
  }
  return { removed, merges, resumed, deleted, deferred, unmerged, unrestorable, foreign, ...(damagedData.length === 0 ? {} : { damagedData }) }
}

/** why the merges that removing some restore points needs cannot all be done now */
export interface MergeObstacle {
  readonly vdi: string
  readonly reason: 'damaged' | 'mixed-formats' | 'xo-merge-pending'
  readonly message: string
  /** the damage found, for `damaged` */
  readonly damage?: readonly MergeDamage[]
}

/**
 * What the merges retention would do once the restore points `drop` are removed would meet,
 * found without changing anything (the merges are checked as their `check` step does): damage,
 * VHD files and directories mixed in one chain, an interrupted merge of Xen Orchestra's own in
 * the way. Only the merges that fold in a VHD of a dropped restore point count. Call it holding
 * the VM's chain lock, after a retention pass has finished what an earlier call left.
 */
export async function mergeObstacles(handler: RemoteHandler, opts: { vm: string; jobId: string; drop: readonly string[]; signal?: AbortSignal }): Promise<MergeObstacle[]> {
  const vm = assertSafeId('vm', opts.vm)
  const jobId = assertSafeId('job', opts.jobId)
  const view = await viewOf(handler, vm, jobId, Infinity, opts.drop)
  const dropped = new Set(view.past.flatMap(file => Object.values(file.metadata.vhds).map(relative => resolveFromVmDir(vm, relative))))
  const obstacles: MergeObstacle[] = []
  const jobDir = jobDisksDir(vm, jobId)
  for (const vdi of (await handler.list(jobDir, { ignoreMissing: true })).filter(isUuid).sort()) {
    throwIfAborted(opts.signal)
    const dir = `${jobDir}/${vdi}`
    const vhds = await listDiskVhds(handler, dir)
    const plan = planDisk(vhds, await readInfos(handler, vhds), view.referenced)
    const merges = plan.merges.filter(chain => chain.some(path => dropped.has(path)))
    if (merges.length === 0) continue
    const xoMerge = await xoMergeInTheWay(handler, dir, { merges, deletions: [] })
    if (xoMerge !== undefined) {
      obstacles.push({ vdi, reason: 'xo-merge-pending', message: `disk ${vdi}: Xen Orchestra's own interrupted merge (${xoMerge.statePath}) is pending on the VHDs to merge; the next run of Xen Orchestra's backup job of this VM (or its clean-up) finishes it` })
      continue
    }
    for (const chain of merges) {
      if (view.damagedTargets.has(chain.at(-1)!)) {
        const points = (view.references.get(chain.at(-1)!) ?? []).filter(user => view.withDataDamage.has(user.path)).map(user => user.path)
        obstacles.push({ vdi, reason: 'damaged', message: `disk ${vdi}: ${chain.at(-1)} would receive the merge, but restore point${points.length === 1 ? '' : 's'} ${points.join(', ')} reading it hold${points.length === 1 ? 's' : ''} recorded data damage` })
        continue
      }
      if (mixesFormats(chain)) {
        obstacles.push({ vdi, reason: 'mixed-formats', message: `disk ${vdi}: ${chain.join(', ')} mix VHD files and VHD directories, which no merge folds into one another` })
        continue
      }
      const damage = await checkMerge(handler, chain, { recorded: view.recorded, ...(opts.signal === undefined ? {} : { signal: opts.signal }) })
      if (damage.length > 0) {
        const what = damage
          .slice(0, 3)
          .map(d => (d.block === undefined ? `${d.vhd} (${d.reason})` : `block ${d.block} of ${d.vhd} (${d.reason})`))
          .join('; ')
        obstacles.push({ vdi, reason: 'damaged', damage, message: `disk ${vdi}: damaged data, not merged: ${what}${damage.length > 3 ? ` and ${damage.length - 3} more` : ''}` })
      }
    }
  }
  return obstacles
}

/** records the damage `obstacles` found in the restore points that read it (as a refused merge does); their paths */
export async function recordObstacleDamage(handler: RemoteHandler, vmUuid: string, obstacles: readonly MergeObstacle[]): Promise<string[]> {
  const damage = obstacles.flatMap(obstacle => obstacle.damage ?? [])
  if (damage.length === 0) return []
  const vm = assertSafeId('vm', vmUuid)
  const files = (await readVmMetadataFiles(handler, vm)).flatMap(file => (file.status === 'usable' ? [{ path: file.path, metadata: file.metadata }] : []))
  return recordDamage(handler, vm, files, damage)
}

/** a merge refused for damage: recorded in the restore points that read it, described for the run's warning */
async function refusedMerge(
  handler: RemoteHandler,
  vm: string,
  vdi: string,
  files: readonly MetadataFile[],
  damage: readonly MergeDamage[],
): Promise<NonNullable<RetentionResult['damagedData']>[number]> {
  const restorePoints = await recordDamage(handler, vm, files, damage)
  const vhds = [...new Set(damage.map(d => d.vhd))]
  const what = damage
    .slice(0, 3)
    .map(d => (d.block === undefined ? `${d.vhd} (${d.reason})` : `block ${d.block} of ${d.vhd} (${d.reason})`))
    .join('; ')
  const points =
    restorePoints.length === 0
      ? 'no kept restore point reads the damaged data'
      : `restore point${restorePoints.length === 1 ? '' : 's'} ${restorePoints.join(', ')} cannot be restored (DATA_DAMAGED)`
  return {
    vdi,
    vhds,
    restorePoints,
    message:
      `disk ${vdi}: damaged data, not merged: ${what}${damage.length > 3 ? ` and ${damage.length - 3} more` : ''}; ${points}; ` +
      `the chain is kept unmerged (more than retention needs) so that every undamaged restore point still restores, ` +
      `and the next run of this disk is a full`,
  }
}

/**
 * Xen Orchestra's interrupted merge in `dir` whose VHDs this plan would merge or delete, if any.
 * Such a merge is resumed by Xen Orchestra from its own state, on the files as it left them:
 * touching them first would make it merge something else. A merge of VHDs the plan leaves alone
 * is no obstacle. A state that does not name its chain may concern any VHD of the folder.
 */
async function xoMergeInTheWay(handler: RemoteHandler, dir: string, plan: DiskPlan): Promise<{ statePath: string } | undefined> {
  const touched = new Set([...plan.merges.flat(), ...plan.deletions])
  if (touched.size === 0) return undefined
  for (const state of await listXoMergeStates(handler, dir)) {
    if (state.chain === undefined || state.chain.some(path => touched.has(path))) return state
  }
  return undefined
}
