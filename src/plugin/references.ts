/**
 * Checks that what a job names exists in XO before the job is saved: its VMs on a connected
 * pool, its remote known and enabled. Errors name the object but never a remote's URL.
 */
import { BackupError } from '../errors.js'
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
