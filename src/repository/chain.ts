/**
 * VHD chains of one disk folder: a dynamic VHD (the full) followed by differencing VHDs, each
 * naming its parent in its header (`parentUnicodeName`, relative) and carrying the parent's
 * footer UUID (`parentUuid`).
 */
import { BackupError } from '../errors.js'
import { diskDir, isVhdName, normalizePath, resolveSibling } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'
import { Constants, formatUuid, isVhdAlias, openVhd, resolveVhdAlias } from './vhd-lib.js'

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

/**
 * Whether chains can be read, VHD by VHD: each VHD's footers and header are read once however
 * many chains go through it (the cost of a listing is the number of VHDs, not of chains × length).
 */
export class ChainChecker {
  readonly #handler: RemoteHandler
  readonly #infos = new Map<string, Promise<VhdInfo | { problem: string }>>()
  /** settled results: a chain's problem, or `null` when it reads */
  readonly #chains = new Map<string, string | null>()

  constructor(handler: RemoteHandler) {
    this.#handler = handler
  }

  #info(path: string): Promise<VhdInfo | { problem: string }> {
    let info = this.#infos.get(path)
    if (info === undefined) {
      info = readVhdInfo(this.#handler, path).catch((error: unknown) => ({
        problem: (error as { code?: string }).code === 'ENOENT' ? 'is missing' : `is unreadable (truncated or damaged): ${(error as Error).message}`,
      }))
      this.#infos.set(path, info)
    }
    return info
  }

  /** why the chain ending at `vhdPath` cannot be read, or `undefined` when it can (call one at a time) */
  async problemOf(vhdPath: string): Promise<string | undefined> {
    return (await this.#problemOf(normalizePath(vhdPath), [])) ?? undefined
  }

  /**
   * Reads the footers and headers of `vhdPaths` ahead, `concurrency` at a time (each VHD once):
   * on a remote the reads of a listing wait on the remote, not on one another
   */
  async prefetch(vhdPaths: Iterable<string>, concurrency = 8): Promise<void> {
    const paths = [...new Set([...vhdPaths].map(normalizePath))].filter(path => !this.#infos.has(path))
    let next = 0
    const worker = async () => {
      while (next < paths.length) await this.#info(paths[next++]!)
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, paths.length) }, worker))
  }

  async #problemOf(path: string, seen: readonly string[]): Promise<string | null> {
    if (seen.includes(path)) return `the VHD chain loops at ${path}`
    const known = this.#chains.get(path)
    if (known !== undefined) return known
    const info = await this.#info(path)
    let problem: string | null = null
    if ('problem' in info) {
      problem = `VHD ${path} ${info.problem}`
    } else if (info.parent === undefined) {
      if (info.diskType !== DISK_TYPES.DYNAMIC && info.diskType !== DISK_TYPES.FIXED) problem = `VHD ${path} has an unknown disk type ${info.diskType}`
    } else {
      const parent = await this.#info(info.parent.path)
      problem =
        !('problem' in parent) && parent.uuid !== info.parent.uuid
          ? `parent VHD ${info.parent.path} has UUID ${parent.uuid}, its child ${path} expects ${info.parent.uuid}`
          : await this.#problemOf(info.parent.path, [...seen, path])
    }
    this.#chains.set(path, problem)
    return problem
  }
}

/** some VHDs of `chain` are files and others VHD directories (aliases) */
export function mixesFormats(chain: readonly string[]): boolean {
  const aliases = chain.filter(isVhdAlias).length
  return aliases !== 0 && aliases !== chain.length
}

export interface UnusableVhd {
  readonly path: string
  readonly reason: string
}

/**
 * The newest VHD of a disk and its footer UUID (the snapshot VDI it was exported from), if it
 * and its whole chain are readable: a delta may be based on it. `undefined` when the folder
 * holds no VHD, or when the newest one (or its chain) is unusable; then `onUnusable` says why.
 * A chain mixing VHD files and VHD directories (written before a delta always took its parent's
 * format) is unusable as a base: a full starts a new chain, and the old one ages out.
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
    const chain = await chainOf(handler, path)
    if (mixesFormats(chain)) {
      throw new Error('its chain mixes VHD files and VHD directories, which a merge cannot fold; a new chain starts with a full')
    }
    const { uuid } = await readVhdInfo(handler, path)
    return { path, uuid }
  } catch (error) {
    opts.onUnusable?.({ path, reason: (error as Error).message })
    return undefined
  }
}

/**
 * Whether chains can be read, judged from the disk folders' listings alone: no VHD is opened,
 * one listing per disk folder (and of its `data` folder when it holds VHD directories).
 *
 * What it sees: a VHD missing from its folder; a VHD directory whose data folder is gone; a
 * delta whose parent is missing. A VHD's parent is not read from its header: it is the VHD
 * written just before it in the same folder (each delta is written on the newest VHD of its
 * disk), among those on the remote and those a restore point's metadata still names, so that a
 * parent deleted while its restore point's metadata is there is seen missing.
 *
 * What it does not see (footers and headers are not read): a truncated or overwritten VHD, a
 * parent UUID that does not match, a parent deleted together with its restore point's metadata.
 * Those are caught before they matter by whoever reads the VHDs: a retention pass that removes a
 * restore point checks the chains it counts with `ChainChecker` first, a merge opens every VHD it
 * folds in, the run's base check reads the whole newest chain before building a delta on it, and
 * `verify` and every restore read footers, headers and blocks.
 */
export class ListedChains {
  readonly #handler: RemoteHandler
  /** VHD path → whether it is a delta, as the metadata that names it says */
  readonly #named: ReadonlyMap<string, boolean>
  readonly #folders = new Map<string, Promise<ListedFolder>>()
  /** settled results: a chain's problem, or `null` when the listings show nothing wrong */
  readonly #chains = new Map<string, string | null>()

  constructor(handler: RemoteHandler, named: ReadonlyMap<string, boolean>) {
    this.#handler = handler
    this.#named = named
  }

  #folder(dir: string): Promise<ListedFolder> {
    let folder = this.#folders.get(dir)
    if (folder === undefined) {
      folder = (async () => {
        const vhds = new Set(await listDiskVhds(this.#handler, dir))
        const data = [...vhds].some(isVhdAlias) ? new Set(await this.#handler.list(`${dir}/data`, { ignoreMissing: true })) : new Set<string>()
        const named = [...this.#named.keys()].filter(path => path.startsWith(`${dir}/`) && !path.slice(dir.length + 1).includes('/'))
        return { vhds, data, order: [...new Set([...vhds, ...named])].sort() }
      })()
      this.#folders.set(dir, folder)
    }
    return folder
  }

  /** why the chain ending at `vhdPath` cannot be read, as far as the listings tell, or `undefined` */
  async problemOf(vhdPath: string): Promise<string | undefined> {
    return (await this.#problemOf(normalizePath(vhdPath))) ?? undefined
  }

  async #problemOf(path: string): Promise<string | null> {
    const known = this.#chains.get(path)
    if (known !== undefined) return known
    const dir = path.slice(0, path.lastIndexOf('/'))
    const folder = await this.#folder(dir)
    let problem: string | null = null
    if (!folder.vhds.has(path)) {
      problem = `VHD ${path} is missing`
    } else if (isVhdAlias(path) && !folder.data.has(path.slice(dir.length + 1).replace(/\.alias\.vhd$/, '.vhd')) && !(await this.#aliasTargetExists(path))) {
      // (a VHD directory elsewhere than its usual place: its alias says where)
      problem = `VHD ${path}: its data folder is missing`
    } else if (this.#named.get(path) === true) {
      // a delta: its parent is the VHD written just before it in its folder. (A full, or a VHD
      // no metadata names: whether it has a parent is for its header to say.)
      const at = folder.order.indexOf(path)
      const parent = at > 0 ? folder.order[at - 1] : undefined
      problem = parent === undefined ? `VHD ${path} is a delta with no parent VHD in its folder` : await this.#problemOf(parent)
    }
    this.#chains.set(path, problem)
    return problem
  }

  async #aliasTargetExists(alias: string): Promise<boolean> {
    try {
      await this.#handler.list(await resolveVhdAlias(this.#handler, alias))
      return true
    } catch {
      return false
    }
  }
}

interface ListedFolder {
  /** the VHDs on the remote */
  readonly vhds: ReadonlySet<string>
  /** the names in its `data` folder (VHD directories) */
  readonly data: ReadonlySet<string>
  /** the VHDs on the remote and those a metadata names, by name (the order they were written in) */
  readonly order: readonly string[]
}
