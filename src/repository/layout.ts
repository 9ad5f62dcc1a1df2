/**
 * Every path on an XO remote is built here, and nowhere else. Pure functions: no I/O except
 * `nextFreeTimestamp`, which looks at what already exists.
 *
 * ```
 * xo-vm-backups/<vm uuid>/<ts>.json                               restore point metadata
 * xo-vm-backups/<vm uuid>/cache.json.gz                           XO's listing cache (deleted on change)
 * xo-vm-backups/<vm uuid>/vdis/<job id>/<source vdi uuid>/<ts>.vhd        VHD file
 * xo-vm-backups/<vm uuid>/vdis/<job id>/<source vdi uuid>/<ts>.alias.vhd  alias of a VHD directory
 * xo-vm-backups/<vm uuid>/vdis/<job id>/<source vdi uuid>/data/<ts>.vhd/  the VHD directory
 * ```
 * Paths are relative to the remote root, `/`-separated, without a leading `/`.
 */
import { posix } from 'node:path'
import { BackupError } from '../errors.js'
import type { RemoteHandler } from './remote-handler.js'

export const BACKUP_ROOT = 'xo-vm-backups'

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** ids that are not uuids (XO job and schedule ids usually are, but need not be) */
const ID_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/
const TIMESTAMP_RE = /^\d{8}T\d{6}Z$/
const VHD_NAME_RE = /^(\d{8}T\d{6}Z)(\.alias)?\.vhd$/
const METADATA_NAME_RE = /^(\d{8}T\d{6}Z)\.json$/

/** kinds of id that must be a uuid */
const UUID_KINDS = new Set(['vm', 'vdi', 'sr', 'snapshot', 'uuid'])

export function isUuid(value: string): boolean {
  return UUID_RE.test(value)
}

/**
 * Returns `value` if it is safe as one path segment of kind `kind` (`vm`, `vdi`: a uuid;
 * `job`, `schedule`, others: letters, digits, `.`, `_`, `-`, no `..`); throws
 * `BackupError('UNSAFE_PATH')` otherwise.
 */
export function assertSafeId(kind: string, value: string): string {
  const fail = (why: string): never => {
    throw new BackupError('UNSAFE_PATH', `refusing ${kind} id ${JSON.stringify(value)}: ${why}`, { kind })
  }
  if (typeof value !== 'string' || value === '') return fail('empty')
  if (value.includes('\0')) return fail('contains NUL')
  if (value.includes('/') || value.includes('\\')) return fail('contains a path separator')
  if (value === '.' || value.includes('..')) return fail('contains a parent reference')
  if (UUID_KINDS.has(kind)) {
    if (!UUID_RE.test(value)) return fail('not a uuid')
  } else if (!ID_RE.test(value)) {
    return fail('only letters, digits, ".", "_" and "-" are allowed')
  }
  return value
}

function assertTimestamp(timestamp: string): string {
  if (!TIMESTAMP_RE.test(timestamp)) {
    throw new BackupError('UNSAFE_PATH', `not a backup timestamp: ${JSON.stringify(timestamp)}`)
  }
  return timestamp
}

/** UTC, second precision: `20261126T055024Z` */
export function formatTimestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '')
}

export function parseTimestamp(timestamp: string): Date {
  assertTimestamp(timestamp)
  const t = timestamp
  return new Date(`${t.slice(0, 4)}-${t.slice(4, 6)}-${t.slice(6, 8)}T${t.slice(9, 11)}:${t.slice(11, 13)}:${t.slice(13, 15)}Z`)
}

export function vmDir(vmUuid: string): string {
  return `${BACKUP_ROOT}/${assertSafeId('vm', vmUuid)}`
}

export function metadataPath(vmUuid: string, timestamp: string): string {
  return `${vmDir(vmUuid)}/${assertTimestamp(timestamp)}.json`
}

/** XO's gzip cache of the VM folder's metadata: stale as soon as a `.json` changes */
export function metadataCachePath(vmUuid: string): string {
  return `${vmDir(vmUuid)}/cache.json.gz`
}

/** `xo-vm-backups/<vm>/vdis`: one folder per job below */
export function vdisDir(vmUuid: string): string {
  return `${vmDir(vmUuid)}/vdis`
}

export function jobDisksDir(vmUuid: string, jobId: string): string {
  return `${vdisDir(vmUuid)}/${assertSafeId('job', jobId)}`
}

export function diskDir(vmUuid: string, jobId: string, vdiUuid: string): string {
  return `${jobDisksDir(vmUuid, jobId)}/${assertSafeId('vdi', vdiUuid)}`
}

export function vhdPath(vmUuid: string, jobId: string, vdiUuid: string, timestamp: string, directory: boolean): string {
  return `${diskDir(vmUuid, jobId, vdiUuid)}/${assertTimestamp(timestamp)}${directory ? '.alias.vhd' : '.vhd'}`
}

/** the folder a VHD alias `<dir>/<ts>.alias.vhd` points to when we write it: `<dir>/data/<ts>.vhd` */
export function vhdDataPath(aliasPath: string): string {
  const match = /^(.*)\/([^/]+)\.alias\.vhd$/.exec(normalizePath(aliasPath))
  if (match === null) {
    throw new BackupError('UNSAFE_PATH', `not a VHD alias path: ${aliasPath}`)
  }
  return `${match[1]}/data/${match[2]}.vhd`
}

/** the file of block `blockId` in a VHD directory, as vhd-lib's VhdDirectory names it */
export function vhdBlockPath(dataPath: string, blockId: number): string {
  return `${dataPath}/blocks/${Math.floor(blockId / 1000)}/${blockId % 1000}`
}

/** the hidden name a metadata file is written under before its rename: `.<ts>.json.<random>.tmp` */
export function metadataTempPath(path: string, random: string): string {
  const normalized = normalizePath(path)
  return `${posix.dirname(normalized)}/.${posix.basename(normalized)}.${random}.tmp`
}

export function isMetadataTempName(name: string): boolean {
  return /^\.\d{8}T\d{6}Z\.json\.[0-9a-f]+\.tmp$/.test(name)
}

/** the hidden name `@xen-orchestra/fs` writes a VHD file under before its rename: `.<ms>.<ts>.vhd` */
export function isVhdTempName(name: string): boolean {
  return /^\.\d+\.\d{8}T\d{6}Z(\.alias)?\.vhd$/.test(name)
}

export function isVhdName(name: string): boolean {
  return VHD_NAME_RE.test(name)
}

export function isMetadataName(name: string): boolean {
  return METADATA_NAME_RE.test(name)
}

/** the timestamp part of `<ts>.json`, `<ts>.vhd` or `<ts>.alias.vhd`, or undefined */
export function timestampOfName(name: string): string | undefined {
  return (VHD_NAME_RE.exec(name) ?? METADATA_NAME_RE.exec(name))?.[1]
}

/** `a/b/../c` → `a/c`, without a leading `/`; throws if the path leaves the remote root */
export function normalizePath(path: string): string {
  if (path.includes('\0')) {
    throw new BackupError('UNSAFE_PATH', `path contains NUL: ${JSON.stringify(path)}`)
  }
  const normalized = posix.normalize('/' + path)
  if (normalized.startsWith('/..')) {
    throw new BackupError('UNSAFE_PATH', `path leaves the remote root: ${path}`)
  }
  return normalized.replace(/^\/+/, '').replace(/\/+$/, '')
}

/** `path` (from the remote root) as XO stores it in metadata: relative to the VM folder */
export function relativeToVmDir(vmUuid: string, path: string): string {
  const dir = vmDir(vmUuid) + '/'
  const normalized = normalizePath(path)
  if (!normalized.startsWith(dir)) {
    throw new BackupError('UNSAFE_PATH', `${path} is not inside ${dir}`)
  }
  return normalized.slice(dir.length)
}

/** a path stored in metadata (relative to the VM folder) back to a path from the remote root */
export function resolveFromVmDir(vmUuid: string, relative: string): string {
  const dir = vmDir(vmUuid)
  const resolved = normalizePath(`${dir}/${relative}`)
  if (!resolved.startsWith(dir + '/')) {
    throw new BackupError('UNSAFE_PATH', `metadata path ${JSON.stringify(relative)} leaves the VM folder ${dir}`)
  }
  return resolved
}

/** `child`'s parent as named in its header (`parentUnicodeName`, relative to the child's folder) */
export function resolveSibling(childPath: string, name: string): string {
  return normalizePath(`${posix.dirname(normalizePath(childPath))}/${name}`)
}

/** the name of `parentPath` relative to `childPath`'s folder, as VHD parent locators store it */
export function relativeName(childPath: string, parentPath: string): string {
  return posix.relative(posix.dirname('/' + normalizePath(childPath)), '/' + normalizePath(parentPath))
}

async function listNames(handler: RemoteHandler, dir: string): Promise<string[]> {
  return handler.list(dir, { ignoreMissing: true }).catch((error: { code?: string }) => {
    if (error.code === 'ENOTDIR') return []
    throw error
  })
}

/**
 * The first timestamp at or after `date` (bumped one second at a time) that no restore point
 * and no VHD of this VM uses yet: two runs in the same second never share a name.
 */
export async function nextFreeTimestamp(handler: RemoteHandler, vmUuid: string, date: Date): Promise<string> {
  const used = new Set<string>()
  const collect = (names: string[]) => {
    for (const name of names) {
      const ts = timestampOfName(name)
      if (ts !== undefined) used.add(ts)
    }
  }
  collect(await listNames(handler, vmDir(vmUuid)))
  const vdis = vdisDir(vmUuid)
  for (const job of await listNames(handler, vdis)) {
    for (const vdi of await listNames(handler, `${vdis}/${job}`)) {
      collect(await listNames(handler, `${vdis}/${job}/${vdi}`))
    }
  }
  let time = Math.floor(date.getTime() / 1000) * 1000
  while (used.has(formatTimestamp(new Date(time)))) {
    time += 1000
  }
  return formatTimestamp(new Date(time))
}
