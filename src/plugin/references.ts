/**
 * Checks that what a job names exists in XO before the job is saved: its VMs on a connected
 * pool, its remote known and enabled. Errors name the object but never a remote's URL.
 */
import { BackupError } from '../errors.js'
import { assertSafeId, BACKUP_ROOT, isMetadataName } from '../repository/layout.js'
import type { XoApp } from './xo.js'

export type ReferenceHost = Pick<XoApp, 'getObject' | 'getRemote'>

export function assertVmsKnown(xo: ReferenceHost, vms: readonly string[]): void {
  const missing = vms.filter(vm => {
    try {
      return xo.getObject(vm, 'VM').type !== 'VM'
    } catch {
      return true
    }
  })
  if (missing.length !== 0) {
    throw new BackupError(
      'VM_NOT_FOUND',
      `${missing.length === 1 ? 'VM' : 'VMs'} ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} not on any connected pool`,
      { vms: missing }
    )
  }
}

export function assertSrKnown(xo: ReferenceHost, sr: string): void {
  let known = false
  try {
    known = xo.getObject(sr, 'SR').type === 'SR'
  } catch {
    known = false
  }
  if (!known) throw new BackupError('SR_NOT_FOUND', `SR ${sr} is not on any connected pool`, { sr })
}

export async function assertRemoteUsable(xo: ReferenceHost, remoteId: string): Promise<void> {
  let remote
  try {
    remote = await xo.getRemote(remoteId)
  } catch {
    throw new BackupError('REMOTE_NOT_FOUND', `remote ${remoteId} does not exist`, { remote: remoteId })
  }
  if (!remote.enabled) {
    throw new BackupError('REMOTE_DISABLED', `remote ${remoteId} (${remote.name}) is disabled`, { remote: remoteId })
  }
}

/**
 * A restore point id is the path of its metadata file as `listRestorePoints` gives it
 * (`xo-vm-backups/<vm>/<timestamp>.json`): anything else is refused before the remote is read.
 */
export function assertRestorePointId(id: string): void {
  const [root, vm, name, ...rest] = id.split('/')
  if (root !== BACKUP_ROOT || vm === undefined || name === undefined || rest.length !== 0 || !isMetadataName(name)) {
    throw new BackupError('RESTORE_POINT_NOT_FOUND', `"${id}" is not a restore point id (${BACKUP_ROOT}/<vm>/<timestamp>.json, as listRestorePoints gives)`, {
      restorePoint: id,
    })
  }
  assertSafeId('vm', vm)
}
