/**
 * Xen Orchestra's restore point metadata (`<ts>.json`, format 2.0.0, mode `delta`): its type,
 * a builder from XAPI records, an atomic writer and a validating reader.
 *
 * Product-specific data rides in one field XO ignores, `continuousDelta`: the disks that were
 * left out and why, and the sha256 of each VHD as it was written.
 */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { BackupError } from '../errors.js'
import { metadataCachePath, metadataTempPath, relativeToVmDir } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'

/** a XAPI record as stored in metadata: the record's own fields, no client-side `$` links */
export type StoredRecord = { readonly uuid: string } & { readonly [field: string]: unknown }

export interface StoredVdi extends StoredRecord {
  readonly name_label: string
  readonly virtual_size: number
  readonly other_config: Readonly<Record<string, string>>
  /** uuid of the source VDI this snapshot VDI was taken of */
  readonly $snapshot_of$uuid: string
  readonly $SR$uuid: string
}

export interface StoredVif extends StoredRecord {
  readonly $network$uuid: string
  readonly $network$name_label: string
  /** VLAN tag of the network's first PIF (-1: untagged), absent when the network has no PIF */
  readonly $network$VLAN?: number
}

/** a CD drive of the VM (restored empty: its disc is not backed up) */
export interface CdDriveRecord {
  readonly userdevice: string
  readonly bootable: boolean
}

export interface ExcludedDiskRecord {
  /** source VDI uuid */
  readonly vdi: string
  readonly name: string
  readonly reason: string
}

/** the whole-VHD checksum restore points written before block checksums recorded */
export interface VhdChecksum {
  /** sha256 (hex) of the VHD as written: the file's bytes, or for a VHD directory its canonical VHD stream */
  readonly sha256: string
  readonly size: number
}

/** product-specific extras, ignored by Xen Orchestra */
export interface ContinuousDeltaExtras {
  readonly version: 1
  readonly excluded: readonly ExcludedDiskRecord[]
  /**
   * VHD path relative to the VM folder (as in `vhds`) → digest (sha256, hex) of its block-checksum
   * list, computed while it was written (src/repository/integrity/, docs/remote-format.md)
   */
  readonly blockChecksums?: Readonly<Record<string, string>>
  /** restore points written before block checksums: VHD path → sha256 of the whole VHD */
  readonly checksums?: Readonly<Record<string, VhdChecksum>>
  /** the VM's CD drives (Xen Orchestra's `vbds` hold disk drives only) */
  readonly cdDrives?: readonly CdDriveRecord[]
  /**
   * damage found in the VHDs of this restore point's chain that its restore reads (a merge
   * refused for it): the point does not restore (DATA_DAMAGED), and no delta is built on its chain
   */
  readonly damaged?: readonly DamageRecord[]
}

/** a damaged VHD (or blocks of it) a restore point reads */
export interface DamageRecord {
  /** VHD path relative to the VM folder (as in `vhds`) */
  readonly vhd: string
  /** the damaged blocks, when the VHD's structures are intact */
  readonly blocks?: readonly number[]
  readonly reason: string
  /** ms since the epoch */
  readonly foundAt: number
}

export interface BackupMetadata {
  readonly version: '2.0.0'
  readonly mode: 'delta'
  readonly jobId: string
  readonly scheduleId: string
  /** ms since the epoch */
  readonly timestamp: number
  readonly vm: StoredRecord
  readonly vmSnapshot: StoredRecord
  /** snapshot VBD ref → record */
  readonly vbds: Readonly<Record<string, StoredRecord>>
  /** snapshot VDI ref → record */
  readonly vdis: Readonly<Record<string, StoredVdi>>
  /** snapshot VIF ref → record */
  readonly vifs: Readonly<Record<string, StoredVif>>
  /**
   * the contents of each vTPM of the snapshot (`VTPM.get_contents`, base64), as Xen Orchestra
   * stores them; `null` for a vTPM whose contents could not be read
   */
  readonly vtpms: readonly (string | null)[]
  /** snapshot VDI ref → VHD path relative to the VM folder */
  readonly vhds: Readonly<Record<string, string>>
  /** snapshot VDI ref → false for a full, true for a delta */
  readonly isVhdDifferencing: Readonly<Record<string, boolean>>
  /** bytes transferred */
  readonly size: number
  readonly tags: readonly string[]
  readonly includeNonNbdQcow2Fix: boolean
  readonly continuousDelta?: ContinuousDeltaExtras
}

/** a XAPI record as the xen-api client returns it (`$ref` and maybe `$` links), or a plain one */
export type XapiRecordInput = { readonly $ref?: string; readonly uuid: string } & { readonly [field: string]: unknown }

export interface BuildMetadataInput {
  readonly job: { readonly id: string }
  readonly scheduleId: string
  readonly timestamp: number | Date
  /** the source VM */
  readonly vm: XapiRecordInput
  /** the snapshot VM the disks were exported from */
  readonly vmSnapshot: XapiRecordInput
  /** the snapshot's VBDs; those of excluded disks and non-disk VBDs are left out */
  readonly vbds: readonly XapiRecordInput[]
  /** the snapshot VDIs that were backed up (each with `$ref`) */
  readonly vdis: readonly XapiRecordInput[]
  readonly vifs: readonly XapiRecordInput[]
  /** records to resolve `VIF.network` (by ref) */
  readonly networks: readonly XapiRecordInput[]
  /** network ref → VLAN tag of its first PIF (-1: untagged); networks without PIF are absent */
  readonly networkVlans?: Readonly<Record<string, number>>
  /** records to resolve `VDI.SR` (by ref) */
  readonly srs: readonly XapiRecordInput[]
  /** records to resolve `VDI.snapshot_of` (by ref); not needed when a VDI carries `$snapshot_of$uuid` */
  readonly sourceVdis?: readonly XapiRecordInput[]
  /** the contents of the snapshot's vTPMs (`VTPM.get_contents`) */
  readonly vtpms?: readonly (string | null)[]
  readonly cdDrives?: readonly CdDriveRecord[]
  /** snapshot VDI ref or uuid → path of its VHD from the remote root (as passed to writeVhd) */
  readonly vhds: Readonly<Record<string, string>>
  /** snapshot VDI ref or uuid → whether its VHD is a delta */
  readonly differencing: Readonly<Record<string, boolean>>
  /** bytes transferred */
  readonly size: number
  readonly excluded: readonly ExcludedDiskRecord[]
  /** snapshot VDI ref or uuid → digest of the VHD's block-checksum list (what writeVhd returned) */
  readonly blockChecksums?: Readonly<Record<string, string>>
}

function invalid(message: string, context: Record<string, unknown> = {}): never {
  throw new BackupError('METADATA_INVALID', message, context)
}

/** the record's own fields: client-side `$` links and cached getters are dropped */
function storeRecord(record: XapiRecordInput): Record<string, unknown> & { uuid: string } {
  const stored: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) {
    if (!key.startsWith('$') && typeof value !== 'function') stored[key] = value
  }
  return stored as Record<string, unknown> & { uuid: string }
}

function refOf(record: XapiRecordInput, what: string): string {
  if (typeof record.$ref !== 'string' || record.$ref === '') invalid(`${what} ${record.uuid} has no $ref`)
  return record.$ref
}

function linkedUuid(record: XapiRecordInput, field: string, index: Map<string, XapiRecordInput>, what: string): string {
  const explicit = record[`$${field}$uuid`]
  if (typeof explicit === 'string') return explicit
  const ref = record[field]
  const linked = typeof ref === 'string' ? index.get(ref) : undefined
  if (linked !== undefined) return linked.uuid
  const link = record[`$${field}`] as { uuid?: unknown } | undefined
  if (link !== undefined && typeof link === 'object' && typeof link.uuid === 'string') return link.uuid
  return invalid(`cannot resolve ${what}.${field} of ${record.uuid}: pass its record`, { field })
}

function byRef(records: readonly XapiRecordInput[] = []): Map<string, XapiRecordInput> {
  return new Map(records.filter(r => typeof r.$ref === 'string').map(r => [r.$ref as string, r]))
}

/** looks a value up by snapshot VDI ref, then by uuid */
function pick<T>(map: Readonly<Record<string, T>> | undefined, vdi: XapiRecordInput): T | undefined {
  if (map === undefined) return undefined
  return (vdi.$ref !== undefined ? map[vdi.$ref] : undefined) ?? map[vdi.uuid]
}

/** builds the metadata of a restore point from the XAPI records of the snapshot that was exported */
export function buildMetadata(input: BuildMetadataInput): BackupMetadata {
  const vmUuid = input.vm.uuid
  const networks = byRef(input.networks)
  const srs = byRef(input.srs)
  const sourceVdis = byRef(input.sourceVdis)

  const vdis: Record<string, StoredVdi> = {}
  const vhds: Record<string, string> = {}
  const isVhdDifferencing: Record<string, boolean> = {}
  const blockChecksums: Record<string, string> = {}
  for (const vdi of input.vdis) {
    const ref = refOf(vdi, 'VDI')
    const path = pick(input.vhds, vdi)
    if (path === undefined) invalid(`no VHD path given for VDI ${vdi.uuid}`)
    const differencing = pick(input.differencing, vdi)
    if (differencing === undefined) invalid(`no full/delta flag given for VDI ${vdi.uuid}`)
    const relative = relativeToVmDir(vmUuid, path)
    vdis[ref] = {
      ...storeRecord(vdi),
      $snapshot_of$uuid: linkedUuid(vdi, 'snapshot_of', sourceVdis, 'VDI'),
      $SR$uuid: linkedUuid(vdi, 'SR', srs, 'VDI'),
    } as StoredVdi
    vhds[ref] = relative
    isVhdDifferencing[ref] = differencing
    const digest = pick(input.blockChecksums, vdi)
    if (digest !== undefined) blockChecksums[relative] = digest
  }

  const vbds: Record<string, StoredRecord> = {}
  for (const vbd of input.vbds) {
    if (vbd.type !== 'Disk' || typeof vbd.VDI !== 'string' || !(vbd.VDI in vdis)) continue
    vbds[refOf(vbd, 'VBD')] = storeRecord(vbd)
  }

  const vifs: Record<string, StoredVif> = {}
  for (const vif of input.vifs) {
    const network = typeof vif.network === 'string' ? networks.get(vif.network) : undefined
    const link = vif.$network as { uuid?: string; name_label?: string } | undefined
    const uuid = network?.uuid ?? link?.uuid
    const name = network?.name_label ?? link?.name_label
    if (typeof uuid !== 'string' || typeof name !== 'string') {
      invalid(`cannot resolve the network of VIF ${vif.uuid}: pass its record`)
    }
    const vlan = typeof vif.network === 'string' ? input.networkVlans?.[vif.network] : undefined
    vifs[refOf(vif, 'VIF')] = {
      ...storeRecord(vif),
      $network$uuid: uuid,
      $network$name_label: name,
      ...(vlan === undefined ? {} : { $network$VLAN: vlan }),
    } as StoredVif
  }

  const timestamp = input.timestamp instanceof Date ? input.timestamp.getTime() : input.timestamp
  const metadata: BackupMetadata = {
    version: '2.0.0',
    mode: 'delta',
    jobId: input.job.id,
    scheduleId: input.scheduleId,
    timestamp,
    vm: storeRecord(input.vm),
    vmSnapshot: storeRecord(input.vmSnapshot),
    vbds,
    vdis,
    vifs,
    vtpms: [...(input.vtpms ?? [])],
    vhds,
    isVhdDifferencing,
    size: input.size,
    tags: [],
    // disks are exported by XAPI as VHD: not touched by the qcow2 export defect this flag tracks
    includeNonNbdQcow2Fix: true,
    continuousDelta: {
      version: 1,
      excluded: input.excluded.map(e => ({ vdi: e.vdi, name: e.name, reason: e.reason })),
      blockChecksums,
      cdDrives: (input.cdDrives ?? []).map(({ userdevice, bootable }) => ({ userdevice, bootable })),
    },
  }
  return validateMetadata(metadata, '(built metadata)')
}

// ---------------------------------------------------------------------------------------------
// validation

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** checks the fields this product and XO rely on; throws METADATA_INVALID naming the file and field */
export function validateMetadata(value: unknown, file: string): BackupMetadata {
  const fail = (field: string, expected: string): never =>
    invalid(`invalid restore point metadata ${file}: field "${field}" ${expected}`, { file, field })
  if (!isObject(value)) return fail('(root)', 'must be an object')
  if (value.version !== '2.0.0') fail('version', `must be "2.0.0", got ${JSON.stringify(value.version)}`)
  if (value.mode !== 'delta') fail('mode', `must be "delta" (incremental backup), got ${JSON.stringify(value.mode)}`)
  for (const field of ['jobId', 'scheduleId'] as const) {
    if (typeof value[field] !== 'string') fail(field, 'must be a string')
  }
  if (typeof value.timestamp !== 'number' || !Number.isFinite(value.timestamp)) fail('timestamp', 'must be a number (ms)')
  for (const field of ['vm', 'vmSnapshot'] as const) {
    const record = value[field]
    if (!isObject(record) || typeof record.uuid !== 'string') fail(`${field}.uuid`, 'must be a string')
  }
  for (const field of ['vbds', 'vdis', 'vifs', 'vhds'] as const) {
    if (!isObject(value[field])) fail(field, 'must be an object')
  }
  const vdis = value.vdis as Json
  const vhds = value.vhds as Json
  for (const [ref, vdi] of Object.entries(vdis)) {
    if (!isObject(vdi) || typeof vdi.uuid !== 'string') fail(`vdis.${ref}.uuid`, 'must be a string')
  }
  for (const [ref, path] of Object.entries(vhds)) {
    if (typeof path !== 'string' || path === '') fail(`vhds.${ref}`, 'must be a path')
    if (!(ref in vdis)) fail(`vhds.${ref}`, 'has no matching entry in "vdis"')
    if (posix.isAbsolute(path as string)) fail(`vhds.${ref}`, 'must be relative to the VM folder')
  }
  if (value.isVhdDifferencing !== undefined) {
    if (!isObject(value.isVhdDifferencing)) fail('isVhdDifferencing', 'must be an object')
    for (const [ref, flag] of Object.entries(value.isVhdDifferencing as Json)) {
      if (typeof flag !== 'boolean') fail(`isVhdDifferencing.${ref}`, 'must be a boolean')
    }
  }
  if (value.size !== undefined && typeof value.size !== 'number') fail('size', 'must be a number')
  const extras = value.continuousDelta
  if (extras !== undefined) {
    if (!isObject(extras)) return fail('continuousDelta', 'must be an object')
    if (!Array.isArray(extras.excluded)) fail('continuousDelta.excluded', 'must be an array')
    if (extras.checksums !== undefined) {
      if (!isObject(extras.checksums)) fail('continuousDelta.checksums', 'must be an object')
      for (const [path, sum] of Object.entries(extras.checksums as Json)) {
        if (!isObject(sum) || typeof sum.sha256 !== 'string' || typeof sum.size !== 'number') {
          fail(`continuousDelta.checksums.${path}`, 'must be { sha256, size }')
        }
      }
    }
    if (extras.cdDrives !== undefined) {
      if (!Array.isArray(extras.cdDrives)) fail('continuousDelta.cdDrives', 'must be an array')
      for (const [index, drive] of (extras.cdDrives as unknown[]).entries()) {
        if (!isObject(drive) || typeof drive.userdevice !== 'string' || typeof drive.bootable !== 'boolean') {
          fail(`continuousDelta.cdDrives.${index}`, 'must be { userdevice, bootable }')
        }
      }
    }
    if (extras.blockChecksums !== undefined) {
      if (!isObject(extras.blockChecksums)) fail('continuousDelta.blockChecksums', 'must be an object')
      for (const [path, digest] of Object.entries(extras.blockChecksums as Json)) {
        if (typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) fail(`continuousDelta.blockChecksums.${path}`, 'must be a sha256 (hex)')
      }
    }
    if (extras.damaged !== undefined) {
      if (!Array.isArray(extras.damaged)) fail('continuousDelta.damaged', 'must be an array')
      for (const [i, record] of (extras.damaged as Json[]).entries()) {
        if (
          !isObject(record) ||
          typeof record.vhd !== 'string' ||
          typeof record.reason !== 'string' ||
          typeof record.foundAt !== 'number' ||
          (record.blocks !== undefined && !(Array.isArray(record.blocks) && record.blocks.every(id => Number.isInteger(id))))
        ) {
          fail(`continuousDelta.damaged.${i}`, 'must be { vhd, reason, foundAt, blocks? }')
        }
      }
    }
  }
  // fields older XO versions may omit get their neutral value
  return {
    ...value,
    isVhdDifferencing: (value.isVhdDifferencing as Record<string, boolean> | undefined) ?? {},
    size: (value.size as number | undefined) ?? 0,
    // XO stores each vTPM's contents, or `undefined` (null in JSON) when it could not read them
    vtpms: Array.isArray(value.vtpms) ? value.vtpms.map(contents => (typeof contents === 'string' ? contents : null)) : [],
    tags: Array.isArray(value.tags) ? (value.tags as string[]) : [],
    includeNonNbdQcow2Fix: value.includeNonNbdQcow2Fix === true,
  } as unknown as BackupMetadata
}

// ---------------------------------------------------------------------------------------------
// I/O

/** the VM folder of a metadata path `xo-vm-backups/<vm>/<ts>.json` */
function vmDirOf(path: string): string {
  return posix.dirname(path.replace(/^\/+/, ''))
}

/** XO keeps a gzip cache of the VM folder's metadata; it must go whenever a `.json` changes */
export async function invalidateMetadataCache(handler: RemoteHandler, metadataFile: string): Promise<void> {
  const vm = posix.basename(vmDirOf(metadataFile))
  await handler.unlink(metadataCachePath(vm))
}

/**
 * Writes `metadata` to `path` atomically: to a hidden temporary name in the same folder, then
 * renamed. A crash leaves either no `.json` or a whole one (plus maybe a hidden `.tmp`).
 * Replaces an existing file at `path`.
 */
export async function writeMetadata(handler: RemoteHandler, path: string, metadata: BackupMetadata): Promise<void> {
  validateMetadata(metadata, path)
  const tmp = metadataTempPath(path, randomBytes(6).toString('hex'))
  await invalidateMetadataCache(handler, path)
  await handler.outputFile(tmp, JSON.stringify(metadata), { flags: 'wx' })
  try {
    await handler.rename(tmp, path)
  } catch (error) {
    await handler.unlink(tmp).catch(() => {})
    throw error
  }
  await invalidateMetadataCache(handler, path)
}

/** reads and validates a restore point's metadata; errors name the file (and the field) */
export async function readMetadata(handler: RemoteHandler, path: string): Promise<BackupMetadata> {
  let raw: Buffer
  try {
    raw = await handler.readFile(path)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') {
      throw new BackupError('RESTORE_POINT_NOT_FOUND', `no restore point metadata at ${path}`, { file: path }, { cause: error })
    }
    throw error
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch (error) {
    throw new BackupError('METADATA_INVALID', `restore point metadata ${path} is not valid JSON: ${(error as Error).message}`, { file: path }, { cause: error })
  }
  return validateMetadata(parsed, path)
}

/** read, change, write back atomically */
export async function updateMetadata(
  handler: RemoteHandler,
  path: string,
  change: (metadata: BackupMetadata) => BackupMetadata | undefined,
): Promise<boolean> {
  const current = await readMetadata(handler, path)
  const next = change(current)
  if (next === undefined) return false
  await writeMetadata(handler, path, next)
  return true
}
