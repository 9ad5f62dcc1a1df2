/**
 * Pool profiles: what a pool of one XenServer / XCP-ng version is, as a whole — the version it
 * reports, the parameters its methods take, the classes, fields and methods its data model has,
 * and the quirks of its storage. A test picks a profile (`Simulator.start({ profile })`); it does
 * not flip single behaviours. Facts: /work/shared/docs/xapi-wire.md ("Real pools differ by
 * version").
 *
 * Switch points (`restore-vm` and others fill in the behaviour behind them):
 * - `snapshotIgnoreVdis`: `VM.snapshot(vm, name, ignore_vdis)` (8.3 on); older pools answer
 *   MESSAGE_PARAMETER_COUNT_MISMATCH to a third argument.
 * - `absentClasses`: classes the version does not serve (no `get_all_records` listed, every call
 *   MESSAGE_METHOD_UNKNOWN): `VTPM` before 8.3.
 * - `absentFields`: fields a class lacks on that version (records do not carry them, their
 *   getters and setters are unknown): `VM.NVRAM` (UEFI variables, Citrix Hypervisor 8.0 on),
 *   `VM.domain_type` (XenServer 7.5 on).
 * - `absentMethods`: methods the version lacks: `VM.set_bios_strings` before XenServer 7.3.
 * - `cbt`: changed block tracking and the NBD server (XenServer 7.3 / XCP-ng 7.4 on, cbt.ts):
 *   before, the CBT methods and `VDI.get_nbd_info` are unknown, `VDI.cbt_enabled` and
 *   `network.purpose` are in no record.
 * - `nbdPurpose`: the purpose the pool's network was given (`xe network-param-add
 *   param-name=purpose param-key=nbd`): `get_nbd_info` answers only then.
 * - `quirks`: storage behaviours every real pool has (see `PoolQuirks`).
 */

export type ProfileName = 'xenserver-6.2' | 'xenserver-6.5' | 'xenserver-7.1' | 'citrix-hypervisor-8.2' | 'xcp-ng-8.3' | 'xcp-ng-8.3-nbd'

/** Behaviours of real storage that every supported version shows; a test may only make them longer. */
export interface PoolQuirks {
  /**
   * After an export of a VDI ends (the VDI exported and the `base` of a delta), that many
   * `VDI.destroy` calls of it answer VDI_IN_USE ("disk not fully unmounted yet": real pools, a
   * few seconds). Meanwhile the VDI keeps a VBD plugged into the control domain.
   */
  readonly vdiInUseAfterExport: number
}

export interface PoolProfile {
  readonly name: ProfileName
  /** what `host.software_version` reports */
  readonly productVersion: string
  readonly productBrand: string
  readonly snapshotIgnoreVdis: boolean
  readonly absentClasses: readonly string[]
  readonly absentFields: Readonly<Record<string, readonly string[]>>
  readonly absentMethods: readonly string[]
  readonly cbt: boolean
  readonly nbdPurpose?: 'nbd' | 'insecure_nbd'
  readonly quirks: PoolQuirks
}

const QUIRKS: PoolQuirks = { vdiInUseAfterExport: 2 }

const BEFORE_7_5_VM_FIELDS = ['NVRAM', 'domain_type']
/** what pools before XenServer 7.3 lack: changed block tracking and NBD */
const CBT_METHODS = ['VDI.enable_cbt', 'VDI.disable_cbt', 'VDI.list_changed_blocks', 'VDI.data_destroy', 'VDI.get_nbd_info']
const BEFORE_7_3_FIELDS = { VDI: ['cbt_enabled'], network: ['purpose'] }

export const PROFILES: Readonly<Record<ProfileName, PoolProfile>> = {
  /** older than the product supports: only the version gate runs on it */
  'xenserver-6.2': {
    name: 'xenserver-6.2',
    productVersion: '6.2.0',
    productBrand: 'XenServer',
    snapshotIgnoreVdis: false,
    absentClasses: ['VTPM'],
    absentFields: { VM: BEFORE_7_5_VM_FIELDS, ...BEFORE_7_3_FIELDS },
    absentMethods: ['VM.set_bios_strings', ...CBT_METHODS],
    cbt: false,
    quirks: QUIRKS,
  },
  'xenserver-6.5': {
    name: 'xenserver-6.5',
    productVersion: '6.5.0',
    productBrand: 'XenServer',
    snapshotIgnoreVdis: false,
    absentClasses: ['VTPM'],
    absentFields: { VM: BEFORE_7_5_VM_FIELDS, ...BEFORE_7_3_FIELDS },
    absentMethods: ['VM.set_bios_strings', ...CBT_METHODS],
    cbt: false,
    quirks: QUIRKS,
  },
  'xenserver-7.1': {
    name: 'xenserver-7.1',
    productVersion: '7.1.2',
    productBrand: 'XenServer',
    snapshotIgnoreVdis: false,
    absentClasses: ['VTPM'],
    absentFields: { VM: BEFORE_7_5_VM_FIELDS, ...BEFORE_7_3_FIELDS },
    absentMethods: ['VM.set_bios_strings', ...CBT_METHODS],
    cbt: false,
    quirks: QUIRKS,
  },
  'citrix-hypervisor-8.2': {
    name: 'citrix-hypervisor-8.2',
    productVersion: '8.2.1',
    productBrand: 'Citrix Hypervisor',
    snapshotIgnoreVdis: false,
    absentClasses: ['VTPM'],
    absentFields: {},
    absentMethods: [],
    cbt: true,
    quirks: QUIRKS,
  },
  'xcp-ng-8.3': {
    name: 'xcp-ng-8.3',
    productVersion: '8.3.0',
    productBrand: 'XCP-ng',
    snapshotIgnoreVdis: true,
    absentClasses: [],
    absentFields: {},
    absentMethods: [],
    cbt: true,
    quirks: QUIRKS,
  },
  /** XCP-ng 8.3 whose network has the purpose `nbd`: backups read over NBD (TLS) with CBT */
  'xcp-ng-8.3-nbd': {
    name: 'xcp-ng-8.3-nbd',
    productVersion: '8.3.0',
    productBrand: 'XCP-ng',
    snapshotIgnoreVdis: true,
    absentClasses: [],
    absentFields: {},
    absentMethods: [],
    cbt: true,
    nbdPurpose: 'nbd',
    quirks: QUIRKS,
  },
}

/** The profile the default inventory plays: the oldest version the product supports. */
export const DEFAULT_PROFILE: ProfileName = 'xenserver-6.5'

/** The supported profiles, oldest first (what suites run on). */
export const SUPPORTED_PROFILES: readonly ProfileName[] = ['xenserver-6.5', 'xenserver-7.1', 'citrix-hypervisor-8.2', 'xcp-ng-8.3', 'xcp-ng-8.3-nbd']

export function profileNamed(name: string): PoolProfile {
  const profile = (PROFILES as Record<string, PoolProfile | undefined>)[name]
  if (profile === undefined) throw new Error(`unknown pool profile "${name}" (profiles: ${Object.keys(PROFILES).join(', ')})`)
  return profile
}

/** A profile whose quirks last longer than the profile's own (tests may make them stricter, never kinder). */
export function withQuirks(profile: PoolProfile, quirks: Partial<PoolQuirks>): PoolProfile {
  const merged = { ...profile.quirks, ...quirks }
  if (merged.vdiInUseAfterExport < profile.quirks.vdiInUseAfterExport) {
    throw new Error(`vdiInUseAfterExport ${merged.vdiInUseAfterExport} is kinder than ${profile.name} (${profile.quirks.vdiInUseAfterExport})`)
  }
  return { ...profile, quirks: merged }
}
