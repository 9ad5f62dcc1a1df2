/**
 * What the steps of one VM's backup share. Each step fills the part it owns; hooks read it and
 * may change what the step left for the next ones (the `[NOBAK]` hook moves disks from `disks`
 * to `excluded`).
 */
import type { ErrorContext } from '../errors.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import type { PoolVersion } from '../xapi/pool-version.js'
import type { VbdRecord, VdiRecord, VmRecord } from '../xapi/records.js'
import type { Housekeeping } from './housekeeping.js'
import type { DiskResult, ExcludedDisk, JobEnvironment, JobSpec, RunReporter } from './job.js'

/** a disk of the VM: the drive and the source VDI */
export interface SourceDisk {
  readonly vbd: VbdRecord
  readonly vdi: VdiRecord
}

/** what `chooseBase` decided for one disk */
export type DiskBase =
  /** `changed`: the 2 MiB blocks changed block tracking lists, read over NBD (else the HTTP export) */
  | { readonly mode: 'delta'; readonly baseVdi: Ref; readonly parentPath: string; readonly changed?: { readonly blocks: readonly number[] } }
  /** `firstExport`: nothing of this disk exists yet, a full is the expected start of a chain */
  | { readonly mode: 'full'; readonly reason: string; readonly firstExport?: boolean }

/** a disk's changed block tracking for this run */
export interface DiskTracking {
  /** CBT is on: the snapshot carries it */
  readonly tracked: boolean
  /** CBT was already on when the run started (else this run enabled it) */
  readonly wasEnabled: boolean
  /** why it is not tracked */
  readonly reason?: string
}

export interface MergeReport {
  readonly vdi: string
  readonly blocks: number
  readonly durationMs: number
}

export interface VmRunContext {
  readonly job: JobSpec
  readonly vmUuid: string
  readonly xapi: XapiClient
  readonly handler: RemoteHandler
  readonly reporter: RunReporter
  readonly signal: AbortSignal
  readonly settings: NonNullable<JobEnvironment['settings']>

  /** checkPool */
  pool?: PoolVersion
  /** selectDisks: the source VM, its disks to back up and those left out */
  vm?: VmRecord
  disks: SourceDisk[]
  /** `ref` is the VDI, `vbd` its drive on the VM */
  excluded: (ExcludedDisk & { readonly ref: Ref; readonly vbd: Ref })[]

  /** selectDisks (hook choose-transport): how the disks are read; per source VDI ref, its tracking */
  transport?: { readonly kind: 'nbd' | 'export'; readonly connections: number }
  tracking: Map<Ref, DiskTracking>

  /** snapshot: when this restore point is dated, the reference snapshot found before, the new one */
  date?: Date
  reference?: VmRecord
  /** set as soon as XAPI answers, so that a failure right after still destroys it */
  snapshotRef?: Ref
  snapshot?: VmRecord
  /** source VDI ref → the snapshot of that disk taken by this run */
  snapshotDisks: Map<Ref, VdiRecord>
  /** lifts the migration block set for the run */
  unblockMigration?: () => Promise<void>

  /** chooseBase: source VDI ref → delta or full */
  bases: Map<Ref, DiskBase>

  /** transfer: one result per disk; the VHD written per source VDI ref */
  results: DiskResult[]
  written: Map<Ref, string>

  /** commit */
  restorePoint?: string
  exported: boolean

  /** retention */
  merges: MergeReport[]

  warnings: string[]

  /** under a job: where work the run need not wait for goes (see housekeeping.ts) */
  readonly housekeeping?: Housekeeping
}

export function createVmRunContext(init: {
  job: JobSpec
  vmUuid: string
  xapi: XapiClient
  handler: RemoteHandler
  reporter: RunReporter
  signal: AbortSignal
  settings?: JobEnvironment['settings']
  housekeeping?: Housekeeping
}): VmRunContext {
  return {
    ...init,
    settings: init.settings ?? {},
    disks: [],
    excluded: [],
    tracking: new Map(),
    snapshotDisks: new Map(),
    bases: new Map(),
    results: [],
    written: new Map(),
    exported: false,
    merges: [],
    warnings: [],
  }
}

/** moves a disk from the backup to the excluded list */
export function excludeDisk(ctx: VmRunContext, disk: SourceDisk, reason: string): void {
  ctx.disks = ctx.disks.filter(candidate => candidate !== disk)
  ctx.excluded.push({ vdi: disk.vdi.uuid, ref: disk.vdi.$ref, vbd: disk.vbd.$ref, name: disk.vdi.name_label, reason })
  ctx.reporter.info(`disk "${disk.vdi.name_label}" left out: ${reason}`, { vdi: disk.vdi.uuid })
}

/** adds a warning to the run's result and to its log */
export function warn(ctx: VmRunContext, message: string, data?: Record<string, unknown>): void {
  ctx.warnings.push(message)
  ctx.reporter.warning(message, data)
}

export function errorContextOf(ctx: VmRunContext): ErrorContext {
  return { vm: ctx.vmUuid, job: ctx.job.id }
}
