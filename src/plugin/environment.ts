/**
 * How the plugin reaches pools and remotes through xo-server: the lifecycle's `getXapi` and
 * `getRemoteHandler`, with errors that name the VM or the remote (never a remote's URL).
 */
import { BackupError } from '../errors.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'
import { assertRemoteUsable } from './references.js'
import type { XoApp } from './xo.js'

export type ConnectionHost = Pick<XoApp, 'getXapi' | 'getObject' | 'getRemote' | 'getRemoteHandler'>

export function getXapiOfVm(xo: ConnectionHost, vm: string): XapiClient {
  try {
    return xo.getXapi(vm)
  } catch (error) {
    throw new BackupError('VM_NOT_FOUND', `VM ${vm} is not on any connected pool`, { vm }, { cause: error })
  }
}

export function getXapiOfSr(xo: ConnectionHost, sr: string): XapiClient {
  try {
    if (xo.getObject(sr, 'SR').type !== 'SR') throw new Error('not an SR')
    return xo.getXapi(sr)
  } catch (error) {
    throw new BackupError('SR_NOT_FOUND', `SR ${sr} is not on any connected pool`, { sr }, { cause: error })
  }
}

export async function getRemoteHandler(xo: ConnectionHost, remoteId: string): Promise<RemoteHandler> {
  await assertRemoteUsable(xo, remoteId)
  try {
    return await xo.getRemoteHandler(remoteId)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new BackupError('REMOTE_DISABLED', `remote ${remoteId} cannot be reached: ${reason}`, { remote: remoteId }, { cause: error })
  }
}
