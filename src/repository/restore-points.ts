/**
 * Restore points of a remote: one per incremental-backup metadata file
 * `xo-vm-backups/<vm>/<ts>.json`, whoever wrote it (this product or Xen Orchestra).
 */
import { posix } from 'node:path'
import { BACKUP_ROOT, assertSafeId, isMetadataName, isUuid, resolveFromVmDir, vmDir } from './layout.js'
import { readMetadata, type BackupMetadata } from './metadata.js'
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
  return points.sort((a, b) => a.timestamp - b.timestamp || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
}
