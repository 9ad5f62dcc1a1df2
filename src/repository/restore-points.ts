/**
 * Restore points of a remote: one per incremental-backup metadata file
 * `xo-vm-backups/<vm>/<ts>.json`, whoever wrote it (this product or Xen Orchestra).
 *
 * Every metadata file of a VM folder is classified (`readVmMetadataFiles`):
 * - `usable`: a valid incremental backup (mode `delta`, format 2.0.0);
 * - `damaged`: it cannot be read, is not JSON (truncated) or misses a field a restore needs; the
 *   reason says which. Its job and date are salvaged where they can be (the job id from the raw
 *   text, the date from its name);
 * - `foreign`: valid JSON of another backup mode or format (Xen Orchestra's full backup, an XVA
 *   beside it: `"mode": "full"`), none of this product's business.
 * Damaged and foreign files are reported and left as they are: never deleted, never counted by
 * retention, never fatal to a listing, a retention pass or a run.
 *
 * A restore point whose metadata is usable can still be unrestorable: a VHD of its chain missing,
 * truncated or unreadable, a parent that is not the one its child expects (`ChainChecker`).
 * `listRestorePointsWithStatus` lists those, and the damaged files, with their reason.
 */
import { posix } from 'node:path'
import { ChainChecker } from './chain.js'
import { mapConcurrently } from './concurrency.js'
import { BACKUP_ROOT, assertSafeId, isMetadataName, isUuid, parseTimestamp, resolveFromVmDir, vmDir } from './layout.js'
import { readMetadata, validateMetadata, type BackupMetadata } from './metadata.js'
import type { RemoteHandler } from './remote-handler.js'

export interface RestorePointDisk {
  /** source VDI uuid */
  readonly vdi: string
  readonly name: string
  /** VHD path from the remote root */
  readonly vhd: string
  readonly differencing: boolean
}

export interface RestorePoint {
  /** the metadata path from the remote root */
  readonly id: string
  readonly vm: string
  readonly vmName: string
  readonly jobId: string
  /** ms since the epoch */
  readonly timestamp: number
  readonly disks: readonly RestorePointDisk[]
  readonly excluded: readonly { readonly vdi: string; readonly name: string; readonly reason: string }[]
  readonly size: number
}

/** the VM uuids that have a backup folder */
export async function listBackedUpVms(handler: RemoteHandler): Promise<string[]> {
  const names = await handler.list(BACKUP_ROOT, { ignoreMissing: true })
  return names.filter(isUuid).sort()
}

/** the metadata files of one VM, oldest first (by name), paths from the remote root */
export async function listMetadataFiles(handler: RemoteHandler, vmUuid: string): Promise<string[]> {
  const dir = vmDir(vmUuid)
  const names = await handler.list(dir, { ignoreMissing: true })
  return names
    .filter(isMetadataName)
    .sort()
    .map(name => `${dir}/${name}`)
}

/** a restore point as the product presents it, from its metadata */
export function restorePointOf(id: string, metadata: BackupMetadata): RestorePoint {
  // the folder the metadata lives in is what its relative VHD paths are resolved against
  const vm = posix.basename(posix.dirname(id))
  const disks: RestorePointDisk[] = []
  for (const [ref, relative] of Object.entries(metadata.vhds)) {
    const vdi = metadata.vdis[ref]!
    disks.push({
      vdi: vdi.$snapshot_of$uuid,
      name: vdi.name_label,
      vhd: resolveFromVmDir(vm, relative),
      differencing: metadata.isVhdDifferencing[ref] ?? false,
    })
  }
  return {
    id,
    vm,
    vmName: typeof metadata.vm.name_label === 'string' ? metadata.vm.name_label : '',
    jobId: metadata.jobId,
    timestamp: metadata.timestamp,
    disks,
    excluded: metadata.continuousDelta?.excluded ?? [],
    size: metadata.size,
  }
}

export type MetadataFile =
  | { readonly status: 'usable'; readonly path: string; readonly metadata: BackupMetadata }
  | {
      readonly status: 'damaged'
      readonly path: string
      readonly reason: string
      /** the job id, when it can still be read from the raw text */
      readonly jobId?: string
      /** the date of its name (ms since the epoch) */
      readonly timestamp?: number
    }
  | { readonly status: 'foreign'; readonly path: string; readonly reason: string }

function codeOf(error: unknown): string | undefined {
  return (error as { code?: string } | undefined)?.code
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** why valid JSON is another tool's (or another mode's) backup, if it is */
function foreignReason(parsed: unknown): string | undefined {
  if (!isPlainObject(parsed)) return undefined
  const { mode, version } = parsed
  if (typeof mode === 'string' && mode !== 'delta') {
    return mode === 'full' || typeof parsed.xva === 'string'
      ? `a full backup (XVA${typeof parsed.xva === 'string' ? ` ${parsed.xva}` : ''}) of another Xen Orchestra job, not an incremental backup`
      : `a backup of mode "${mode}", not an incremental backup`
  }
  if (mode === 'delta' && typeof version === 'string' && version !== '2.0.0') return `an incremental backup of format ${version}, which is not read (only 2.0.0)`
  return undefined
}

/** the date a metadata file's name carries */
function timestampOfPath(path: string): number | undefined {
  try {
    return parseTimestamp(posix.basename(path, '.json')).getTime()
  } catch {
    return undefined
  }
}

/** reads and classifies one metadata file; `undefined` when it vanished meanwhile */
export async function readMetadataFile(handler: RemoteHandler, path: string): Promise<MetadataFile | undefined> {
  let raw: Buffer
  try {
    raw = await handler.readFile(path)
  } catch (error) {
    if (codeOf(error) === 'ENOENT') return undefined
    return damaged(path, `metadata unreadable: ${(error as Error).message}`, undefined)
  }
  const text = raw.toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    return damaged(path, `metadata is not valid JSON (truncated or overwritten): ${(error as Error).message}`, text)
  }
  const foreign = foreignReason(parsed)
  if (foreign !== undefined) return { status: 'foreign', path, reason: foreign }
  try {
    // validated as read: the file is not read a second time
    return { status: 'usable', path, metadata: validateMetadata(parsed, path) }
  } catch (error) {
    return damaged(path, (error as Error).message, text)
  }
}

function damaged(path: string, reason: string, text: string | undefined): MetadataFile {
  const jobId = text === undefined ? undefined : /"jobId"\s*:\s*"([^"\\]+)"/.exec(text)?.[1]
  const timestamp = timestampOfPath(path)
  return { status: 'damaged', path, reason, ...(jobId === undefined ? {} : { jobId }), ...(timestamp === undefined ? {} : { timestamp }) }
}

/** metadata files read at once: on a remote, each read waits on the remote, not on the others */
const METADATA_READS = 8

/** every metadata file of a VM folder, classified, oldest first (by name) */
export async function readVmMetadataFiles(handler: RemoteHandler, vmUuid: string): Promise<MetadataFile[]> {
  const files = await mapConcurrently(await listMetadataFiles(handler, vmUuid), METADATA_READS, path => readMetadataFile(handler, path))
  return files.filter(file => file !== undefined)
}

/** why the restore point cannot be restored (the first problem of its disks' chains), or `undefined` */
export async function unrestorableReason(point: RestorePoint, checker: { problemOf(vhdPath: string): Promise<string | undefined> }): Promise<string | undefined> {
  for (const disk of point.disks) {
    const problem = await checker.problemOf(disk.vhd)
    if (problem !== undefined) return `disk "${disk.name}": ${problem}`
  }
  return undefined
}

export interface ListedRestorePoint extends RestorePoint {
  /** `damaged`: it cannot be restored, `reason` says why */
  readonly status: 'restorable' | 'damaged'
  readonly reason?: string
}

/**
 * Restore points of the remote (or of one VM, one job), oldest first, with whether each can be
 * restored: its metadata readable and every VHD of its chain present, readable and linked to the
 * parent it expects (footers and headers read, no data). A damaged metadata file is listed as a
 * damaged restore point (its job and date as far as they can be told, no disks); another tool's
 * backups are not listed.
 */
export async function listRestorePointsWithStatus(handler: RemoteHandler, filter: { vm?: string; jobId?: string } = {}): Promise<ListedRestorePoint[]> {
  const vms = filter.vm === undefined ? await listBackedUpVms(handler) : [assertSafeId('vm', filter.vm)]
  const perVm = await mapConcurrently(vms, VMS_LISTED, vm => listVmRestorePointsWithStatus(handler, vm, filter))
  return perVm.flat().sort(byDate)
}

/** VM folders listed at once (each reads its metadata and VHD headers several at a time) */
const VMS_LISTED = 4

async function listVmRestorePointsWithStatus(handler: RemoteHandler, vm: string, filter: { jobId?: string }): Promise<ListedRestorePoint[]> {
  const points: ListedRestorePoint[] = []
  const checker = new ChainChecker(handler)
  const files = await readVmMetadataFiles(handler, vm)
  await checker.prefetch(files.flatMap(file => (file.status === 'usable' ? Object.values(file.metadata.vhds).map(relative => resolveFromVmDir(vm, relative)) : [])))
  for (const file of files) {
    if (file.status === 'foreign') continue
    if (file.status === 'damaged') {
      if (filter.jobId !== undefined && file.jobId !== filter.jobId) continue
      points.push({ id: file.path, vm, vmName: '', jobId: file.jobId ?? '', timestamp: file.timestamp ?? 0, disks: [], excluded: [], size: 0, status: 'damaged', reason: file.reason })
      continue
    }
    let point: RestorePoint
    try {
      point = restorePointOf(file.path, file.metadata)
    } catch (error) {
      points.push({ id: file.path, vm, vmName: '', jobId: file.metadata.jobId, timestamp: file.metadata.timestamp, disks: [], excluded: [], size: 0, status: 'damaged', reason: (error as Error).message })
      continue
    }
    if (filter.jobId !== undefined && point.jobId !== filter.jobId) continue
    // data damage a refused merge recorded: the chain is whole, but a restore fails DATA_DAMAGED
    const reason = (await unrestorableReason(point, checker)) ?? recordedDamageOf(file.metadata)
    points.push(reason === undefined ? { ...point, status: 'restorable' } : { ...point, status: 'damaged', reason })
  }
  return points
}

/** the damage recorded in a restore point's metadata (by a merge that refused it), in words */
export function recordedDamageOf(metadata: BackupMetadata): string | undefined {
  const records = metadata.continuousDelta?.damaged ?? []
  if (records.length === 0) return undefined
  return records.map(record => `${record.vhd}${record.blocks === undefined ? '' : ` (block${record.blocks.length === 1 ? '' : 's'} ${record.blocks.join(', ')})`}: ${record.reason}`).join('; ')
}

function byDate(a: RestorePoint, b: RestorePoint): number {
  return a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

export interface ListRestorePointsOptions {
  /** a metadata file that cannot be read or is invalid is skipped, and reported here */
  onInvalid?(path: string, error: Error): void
}

/** restore points of the remote (or of one VM, one job), oldest first */
export async function listRestorePoints(
  handler: RemoteHandler,
  filter: { vm?: string; jobId?: string } = {},
  opts: ListRestorePointsOptions = {},
): Promise<RestorePoint[]> {
  const vms = filter.vm === undefined ? await listBackedUpVms(handler) : [assertSafeId('vm', filter.vm)]
  const points: RestorePoint[] = []
  for (const vm of vms) {
    for (const path of await listMetadataFiles(handler, vm)) {
      let point: RestorePoint
      try {
        point = restorePointOf(path, await readMetadata(handler, path))
      } catch (error) {
        opts.onInvalid?.(path, error as Error)
        continue
      }
      if (filter.jobId !== undefined && point.jobId !== filter.jobId) continue
      points.push(point)
    }
  }
  return points.sort(byDate)
}
