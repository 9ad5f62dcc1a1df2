/**
 * VHD chains of one disk folder: a dynamic VHD (the full) followed by differencing VHDs, each
 * naming its parent in its header (`parentUnicodeName`, relative) and carrying the parent's
 * footer UUID (`parentUuid`).
 */
import { BackupError } from '../errors.js'
import { diskDir, isVhdName, normalizePath, resolveSibling } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'
import { Constants, formatUuid, openVhd } from './vhd-lib.js'

const { DISK_TYPES } = Constants

export interface VhdInfo {
  readonly path: string
  /** footer UUID */
  readonly uuid: string
  readonly diskType: number
  readonly virtualSize: number
  /** for a differencing VHD: its parent's path and expected footer UUID */
  readonly parent?: { readonly path: string; readonly uuid: string }
}

/** header and footer of a VHD (file or alias); throws if they are unreadable or damaged */
export async function readVhdInfo(handler: RemoteHandler, path: string): Promise<VhdInfo> {
  const disposable = await openVhd(handler, path, { flags: 'r' })
  try {
    const { header, footer } = disposable.value
    const info = { path, uuid: formatUuid(footer.uuid), diskType: footer.diskType, virtualSize: footer.currentSize }
    if (footer.diskType !== DISK_TYPES.DIFFERENCING) return info
    return { ...info, parent: { path: resolveSibling(path, header.parentUnicodeName), uuid: formatUuid(header.parentUuid) } }
  } finally {
    await disposable.dispose()
  }
}

/** the VHDs (`<ts>.vhd`, `<ts>.alias.vhd`) of a disk folder, oldest first, paths from the remote root */
export async function listDiskVhds(handler: RemoteHandler, dir: string): Promise<string[]> {
  const names = await handler.list(dir, { ignoreMissing: true })
  return names
    .filter(isVhdName)
    .sort()
    .map(name => `${normalizePath(dir)}/${name}`)
}

/**
 * The chain ending at `vhdPath`: oldest (the full) first, `vhdPath` last. Throws
 * `CHAIN_BROKEN` on an unreadable VHD, a missing parent or a parent UUID mismatch.
 */
export async function chainOf(handler: RemoteHandler, vhdPath: string): Promise<string[]> {
  const chain: string[] = []
  let path = normalizePath(vhdPath)
  let expectedUuid: string | undefined
  for (;;) {
    if (chain.includes(path)) {
      throw new BackupError('CHAIN_BROKEN', `VHD chain of ${vhdPath} loops at ${path}`, { path })
    }
    let info: VhdInfo
    try {
      info = await readVhdInfo(handler, path)
    } catch (error) {
      const missing = (error as { code?: string }).code === 'ENOENT'
      const what = chain.length === 0 ? 'VHD' : 'parent VHD'
      throw new BackupError(
        'CHAIN_BROKEN',
        `${what} ${path} ${missing ? 'is missing' : `is unreadable: ${(error as Error).message}`}`,
        { path },
        { cause: error },
      )
    }
    if (expectedUuid !== undefined && info.uuid !== expectedUuid) {
      throw new BackupError('CHAIN_BROKEN', `parent VHD ${path} has UUID ${info.uuid}, its child expects ${expectedUuid}`, { path })
    }
    chain.unshift(path)
    if (info.parent === undefined) {
      if (info.diskType !== DISK_TYPES.DYNAMIC && info.diskType !== DISK_TYPES.FIXED) {
        throw new BackupError('CHAIN_BROKEN', `VHD ${path} has an unknown disk type ${info.diskType}`, { path })
      }
      return chain
    }
    expectedUuid = info.parent.uuid
    path = info.parent.path
  }
}

export interface UnusableVhd {
  readonly path: string
  readonly reason: string
}

/**
 * The newest VHD of a disk and its footer UUID (the snapshot VDI it was exported from), if it
 * and its whole chain are readable: a delta may be based on it. `undefined` when the folder
 * holds no VHD, or when the newest one (or its chain) is unusable; then `onUnusable` says why.
 */
export async function newestVhd(
  handler: RemoteHandler,
  vmUuid: string,
  jobId: string,
  vdiUuid: string,
  opts: { onUnusable?(problem: UnusableVhd): void } = {},
): Promise<{ path: string; uuid: string } | undefined> {
  const vhds = await listDiskVhds(handler, diskDir(vmUuid, jobId, vdiUuid))
  const path = vhds.at(-1)
  if (path === undefined) return undefined
  try {
    await chainOf(handler, path)
    const { uuid } = await readVhdInfo(handler, path)
    return { path, uuid }
  } catch (error) {
    opts.onUnusable?.({ path, reason: (error as Error).message })
    return undefined
  }
}
