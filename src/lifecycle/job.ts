/**
 * What the lifecycle needs to run a job, and what a run reports. The plugin surface builds a
 * `JobSpec` from its configuration and a `JobEnvironment` from xo-server's `xo` object; the
 * demo and the tests build them directly.
 */
import type { ErrorCode } from '../errors.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'
import type { RetryPolicy } from '../xapi/retry.js'

export interface JobSpec {
  readonly id: string
  readonly name: string
  /** VM uuids */
  readonly vms: readonly string[]
  /** XO remote id: the chain is keyed by it, never by the remote's URL */
  readonly remoteId: string
  /** restore points kept per VM (>= 1) */
  readonly retention: number
  /** how many VMs run at once */
  readonly concurrency: number
  /** the schedule id written in XO's metadata (`scheduleId`) */
  readonly scheduleId?: string
  /**
   * how disks are read: `auto` (default) over NBD with changed block tracking where the pool
   * offers both, else the HTTP export; `nbd` the same, with a warning when it falls back; `export`
   * always the HTTP export
   */
  readonly transport?: Transport
  /** NBD connections per disk (default 2) */
  readonly nbdConnections?: number
}

export type Transport = 'auto' | 'nbd' | 'export'

/** Progress and log entries of a run: the plugin maps them to XO tasks, the CLI to its output. */
export interface RunReporter {
  info(message: string, data?: Record<string, unknown>): void
  warning(message: string, data?: Record<string, unknown>): void
  /** a child scope (a VM, a disk transfer, a merge) */
  child(name: string, data?: Record<string, unknown>): RunReporter
  /** 0..100 */
  progress(percent: number): void
  end(result?: { status: 'success' | 'failure' | 'skipped'; error?: Error; data?: Record<string, unknown> }): void
}

export interface JobEnvironment {
  /** the connected XAPI client of the pool holding this VM uuid; throws a clear error if none */
  getXapi(vmUuid: string): Promise<XapiClient>
  /** the connected handler of an XO remote id; throws for an unknown or disabled remote */
  getRemoteHandler(remoteId: string): Promise<RemoteHandler>
  readonly reporter: RunReporter
  readonly signal?: AbortSignal
  /** how transient XAPI errors are retried (default `DEFAULT_RETRY_POLICY`; tests inject `sleep`) */
  readonly xapiRetry?: Partial<RetryPolicy>
  /**
   * On the runs that health-check: checks the restore point a VM's backup just wrote (restore,
   * start, guest tools, destroy), reporting under `reporter`. Never rejects: a failure is in the
   * result and in `failure`.
   */
  readonly healthCheck?: (request: HealthCheckRequest) => Promise<HealthCheckResult & { readonly failure?: Error & { readonly code?: string } }>
  /** settings that apply to every job */
  readonly settings?: {
    readonly useVhdDirectory?: boolean
    /** a disk transfer that receives no bytes for this long fails (default 10 minutes) */
    readonly transferTimeoutMs?: number
  }
}

export interface DiskResult {
  /** source VDI uuid */
  readonly vdi: string
  readonly name: string
  readonly mode: 'full' | 'delta'
  /** bytes transferred */
  readonly size: number
  readonly durationMs: number
  /** digest (sha256, hex) of the block-checksum list of the VHD written (its metadata records it) */
  readonly checksum?: string
}

export interface ExcludedDisk {
  readonly vdi: string
  readonly name: string
  readonly reason: string
}

/** what a health check of a restore point found (restored, started, guest tools, destroyed) */
export interface HealthCheckResult {
  readonly status: 'success' | 'failure'
  /** the backed-up VM */
  readonly vm: string
  readonly vmName?: string
  readonly restorePoint: string
  /** the SR the copy was restored to */
  readonly sr: string
  readonly start: number
  readonly end: number
  readonly timeoutMs: number
  /** the uuid the restored copy had (it is destroyed) */
  readonly restoredVm?: string
  /** how long the restore took */
  readonly restoreMs?: number
  /** from `VM.start` to the guest tools reporting */
  readonly bootMs?: number
  /** the version the guest tools reported, e.g. `7.30.0` */
  readonly guestTools?: string
  readonly code?: ErrorCode
  readonly error?: string
}

export interface HealthCheckRequest {
  readonly vm: string
  readonly vmName?: string
  readonly restorePoint: string
  readonly reporter: RunReporter
  readonly signal: AbortSignal
}

/** where and why a VM's backup failed */
export interface VmFailure {
  readonly code: string
  /** the step of the lifecycle (or `healthCheck`) that failed */
  readonly step?: string
  /** the name of the disk it failed on, when it was one disk's */
  readonly disk?: string
  readonly message: string
}

export interface VmRunResult {
  readonly vm: string
  readonly name?: string
  readonly status: 'success' | 'failure'
  readonly error?: string
  /** with `error`: its code, step and disk */
  readonly failureDetail?: VmFailure
  readonly disks: readonly DiskResult[]
  readonly excluded: readonly ExcludedDisk[]
  readonly warnings: readonly string[]
  /** id of the restore point written (its metadata path relative to the remote root) */
  readonly restorePoint?: string
  readonly merges?: readonly { readonly vdi: string; readonly blocks: number; readonly durationMs: number }[]
  /** when the VM's backup started and ended (ms since the epoch) */
  readonly start?: number
  readonly end?: number
  /** the health check of the restore point this run wrote, on the runs that check */
  readonly healthCheck?: HealthCheckResult
}

export interface JobRunResult {
  readonly id: string
  readonly jobId: string
  readonly status: 'success' | 'failure' | 'partial'
  readonly start: number
  readonly end: number
  readonly vms: readonly VmRunResult[]
}
