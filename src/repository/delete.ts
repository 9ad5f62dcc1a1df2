/**
 * Deleting backups on request, under the VM's chain lock, with the retention machinery:
 *
 * - one restore point: its `.json` goes, then the same pass as retention folds what it alone used
 *   into the next restore point of its chain, which keeps its name and its bytes: the full into
 *   the next restore point, which becomes the full (the oldest); a delta between two others into
 *   its child, which becomes one delta of the deleted one's parent (as Xen Orchestra's clean-up
 *   merges an unused delta into its child); or deletes what no restore point uses any more (the
 *   newest). Every other restore point stays restorable. Before anything is deleted, the merges
 *   are checked as their `check` step does: damage (recorded in the restore points that read it,
 *   as retention records it), VHD files and directories mixed in one chain, or Xen Orchestra's
 *   own interrupted merge in the way refuse the deletion, and nothing is deleted. A crash during
 *   the merge is finished by the next run or the next deletion of the VM, from the merge's state.
 * - a VM's backups (`forgetVm`): every restore point this product wrote for the VM (those whose
 *   metadata carries its `continuousDelta` field), then the disk folders no restore point uses.
 *   Restore points written by Xen Orchestra's own jobs beside ours (incremental or full) are
 *   left as they are.
 */
import { BackupError } from '../errors.js'
import { assertSafeId, jobDisksDir, vdisDir, vmDir } from './layout.js'
import { withChainLock } from './lock.js'
import { invalidateMetadataCache, readMetadata } from './metadata.js'
import type { BackupMetadata } from './metadata.js'
import type { RemoteHandler } from './remote-handler.js'
import { listMetadataFiles, readVmMetadataFiles } from './restore-points.js'
import { enforceRetention, mergeObstacles, recordObstacleDamage } from './retention.js'
import type { DiskMergeResult } from './retention.js'

export interface DeleteRestorePointResult {
  readonly restorePoint: string
  readonly vm: string
  readonly jobId: string
  /** merges done so that the restore points after it keep a full */
  readonly merges: readonly DiskMergeResult[]
  /** VHDs (and leftovers) no restore point used any more, deleted */
  readonly deleted: readonly string[]
  /** it was the newest restore point of its job: the job's next run of this VM exports full disks */
  readonly wasNewest: boolean
}

function vmOfRestorePoint(id: string): string {
  const [, vm] = id.split('/')
  return assertSafeId('vm', vm ?? '')
}

export async function deleteRestorePoint(handler: RemoteHandler, id: string, opts: { signal?: AbortSignal } = {}): Promise<DeleteRestorePointResult> {
  const vm = vmOfRestorePoint(id)
  const signal = opts.signal === undefined ? {} : { signal: opts.signal }
  return withChainLock(handler, vm, async () => {
    const metadata = await readMetadata(handler, id)
    // what an interrupted deletion or merge left is finished first: the check below sees the
    // chain as it is
    const before = await enforceRetention(handler, { vm, jobId: metadata.jobId, keep: Infinity, ...signal })
    const obstacles = await mergeObstacles(handler, { vm, jobId: metadata.jobId, drop: [id], ...signal })
    if (obstacles.length > 0) {
      const damaged = obstacles.some(obstacle => obstacle.reason === 'damaged')
      const recorded = await recordObstacleDamage(handler, vm, obstacles)
      const points = recorded.length === 0 ? '' : `; restore point${recorded.length === 1 ? '' : 's'} ${recorded.join(', ')} cannot be restored (DATA_DAMAGED)`
      throw new BackupError(
        damaged ? 'DATA_DAMAGED' : obstacles.some(obstacle => obstacle.reason === 'xo-merge-pending') ? 'CHAIN_LOCKED' : 'INVALID_PARAMETER',
        `restore point ${id} was not deleted, nothing was: the merge its deletion needs cannot be done: ${obstacles.map(obstacle => obstacle.message).join('; ')}${points}`,
        { restorePoint: id, obstacles: obstacles.map(({ vdi, reason, message }) => ({ vdi, reason, message })) },
      )
    }
    const ofJob = await pointsOfJob(handler, vm, metadata.jobId)
    const { merges, deleted } = await enforceRetention(handler, { vm, jobId: metadata.jobId, keep: Infinity, drop: [id], ...signal })
    return { restorePoint: id, vm, jobId: metadata.jobId, merges: [...before.merges, ...merges], deleted: [...before.deleted, ...deleted], wasNewest: ofJob.at(-1) === id }
  })
}

/** the metadata paths of the job's restore points of the VM, oldest first */
async function pointsOfJob(handler: RemoteHandler, vm: string, jobId: string): Promise<string[]> {
  const points: { path: string; timestamp: number }[] = []
  for (const path of await listMetadataFiles(handler, vm)) {
    const metadata = await readMetadata(handler, path).catch(() => undefined)
    if (metadata?.jobId === jobId) points.push({ path, timestamp: metadata.timestamp })
  }
  return points.sort((a, b) => a.timestamp - b.timestamp || (a.path < b.path ? -1 : 1)).map(point => point.path)
}

export interface ForgetVmResult {
  readonly vm: string
  /** metadata paths of the restore points removed */
  readonly removed: readonly string[]
  /** restore points of the VM left in place: written by Xen Orchestra's own jobs */
  readonly kept: readonly string[]
  /** the jobs whose restore points were removed */
  readonly jobIds: readonly string[]
}

function isOurs(metadata: BackupMetadata): boolean {
  return metadata.continuousDelta !== undefined
}

export async function forgetVmBackups(handler: RemoteHandler, vmUuid: string): Promise<ForgetVmResult> {
  const vm = assertSafeId('vm', vmUuid)
  return withChainLock(handler, vm, async () => {
    const files: { path: string; metadata: BackupMetadata }[] = []
    const foreign: string[] = []
    for (const file of await readVmMetadataFiles(handler, vm)) {
      if (file.status === 'foreign') {
        foreign.push(file.path)
      } else if (file.status === 'damaged') {
        // whose it is cannot be told: nothing is deleted rather than the wrong thing
        throw new BackupError(
          'METADATA_INVALID',
          `the backups of VM ${vm} were not forgotten: ${file.path}: ${file.reason}; fix or remove that file first`,
          { vm, file: file.path }
        )
      } else {
        files.push({ path: file.path, metadata: file.metadata })
      }
    }
    const ours = files.filter(file => isOurs(file.metadata))
    const others = files.filter(file => !isOurs(file.metadata))
    for (const { path } of ours) {
      await handler.unlink(path)
      await invalidateMetadataCache(handler, path)
    }
    const jobIds = [...new Set(ours.map(file => file.metadata.jobId))].sort()
    const otherJobs = new Set(others.map(file => file.metadata.jobId))
    for (const jobId of jobIds) {
      if (!otherJobs.has(jobId)) await handler.rmtree(jobDisksDir(vm, jobId))
    }
    if (others.length === 0 && foreign.length === 0) {
      const left = await handler.list(vdisDir(vm), { ignoreMissing: true })
      if (left.length === 0) await handler.rmtree(vmDir(vm))
    }
    return { vm, removed: ours.map(file => file.path), kept: [...others.map(file => file.path), ...foreign].sort(), jobIds }
  })
}

/** deletes every restore point of a job for the VM (the job is deleted with its backups); their paths */
export async function deleteJobBackups(handler: RemoteHandler, vmUuid: string, jobId: string): Promise<string[]> {
  const vm = assertSafeId('vm', vmUuid)
  return withChainLock(handler, vm, async () => {
    const ofJob: string[] = []
    for (const path of await listMetadataFiles(handler, vm)) {
      const metadata = await readMetadata(handler, path).catch(() => undefined)
      if (metadata?.jobId === jobId) ofJob.push(path)
    }
    if (ofJob.length === 0) return []
    const { removed } = await enforceRetention(handler, { vm, jobId, keep: Infinity, drop: ofJob })
    // no restore point of the job is left: its disk folders hold nothing anything needs
    await handler.rmtree(jobDisksDir(vm, jobId))
    return removed
  })
}
