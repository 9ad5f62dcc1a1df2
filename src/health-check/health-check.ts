/**
 * The health check of a restore point, as Xen Orchestra does it (`HealthCheckVmBackup`):
 *
 * 1. restore the restore point as a new VM on the chosen SR (the product's restore, every block
 *    checked), tagged `xo:no-bak=Health Check` so that no backup job takes it, named
 *    `[Health Check] <name> (<date>)`;
 * 2. destroy its network interfaces, so that the copy never starts on a production network
 *    beside the VM it copies (same MACs), and allow its start;
 * 3. start it; wait until it is Running, then until its guest tools report (its
 *    `VM_guest_metrics` has a `PV_drivers_version.major`), all within the timeout counted from
 *    the start;
 * 4. whatever happened (success, failure, timeout, cancellation): shut it down hard and destroy it
 *    with its disks.
 *
 * The result says what was checked, how long the boot took, the guest tools' version, or why
 * it failed; a VM that could not be destroyed is a failure naming it.
 */
import { BackupError } from '../errors.js'
import type { ErrorCode } from '../errors.js'
import type { HealthCheckResult, RunReporter } from '../lifecycle/job.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { RestoreVmOptions, RestoreVmResult } from '../restore/restore-vm.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import { NULL_REF } from '../xapi/client.js'
import { withTransientRetry, type RetryPolicy } from '../xapi/retry.js'
import { destroySnapshot } from '../xapi/snapshot.js'
import { xapiErrorCode } from '../xapi/xapi-error.js'

/** XO's tag: XO's own backup jobs (smart mode) leave such a VM out */
const HEALTH_CHECK_TAG = 'xo:no-bak=Health Check'
const HEALTH_CHECK_NAME_PREFIX = '[Health Check] '
/** XO's default: 10 minutes from the start to the guest tools */
const DEFAULT_HEALTH_CHECK_TIMEOUT_MS = 10 * 60 * 1000
const DEFAULT_POLL_MS = 250

export type { HealthCheckResult }

export interface HealthCheckOptions {
  readonly handler: RemoteHandler
  /** the restore point's id (its metadata path from the remote root) */
  readonly restorePoint: string
  /** the backed-up VM and its name, for the result and the messages */
  readonly vm: string
  readonly vmName?: string
  /** the pool of the SR, and the SR's uuid */
  readonly xapi: XapiClient
  readonly sr: string
  /** from the VM's start to its guest tools reporting (default 10 minutes) */
  readonly timeoutMs?: number
  /** how the restore point is restored (the engine's restore) */
  readonly restore: (opts: RestoreVmOptions) => Promise<RestoreVmResult>
  readonly reporter?: RunReporter
  readonly signal?: AbortSignal
  readonly xapiRetry?: Partial<RetryPolicy>
  /** how often the VM's state is read while waiting (default 250 ms) */
  readonly pollMs?: number
}


function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`
}

function cancelled(): BackupError {
  return new BackupError('CANCELLED', 'the health check was cancelled')
}

/** resolves after `ms`, or rejects at once when `signal` aborts */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(cancelled())
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(cancelled())
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/** reads `probe` until it gives a value; `undefined` once `deadline` (ms since the epoch) has passed */
async function waitFor<T>(probe: () => Promise<T | undefined>, deadline: number, pollMs: number, signal: AbortSignal | undefined): Promise<T | undefined> {
  for (;;) {
    if (signal?.aborted === true) throw cancelled()
    const value = await probe()
    if (value !== undefined) return value
    const left = deadline - Date.now()
    if (left <= 0) return undefined
    await pause(Math.min(pollMs, left), signal)
  }
}

/** the guest tools' version, once the VM's guest metrics report one */
async function guestToolsOf(xapi: XapiClient, vm: Ref): Promise<string | undefined> {
  const metrics = await xapi.call<Ref>('VM.get_guest_metrics', vm)
  if (metrics === NULL_REF) return undefined
  let version: Record<string, unknown>
  try {
    version = await xapi.call<Record<string, unknown>>('VM_guest_metrics.get_PV_drivers_version', metrics)
  } catch (error) {
    // replaced between the two reads (the guest restarted its agent)
    if (xapiErrorCode(error) === 'HANDLE_INVALID') return undefined
    throw error
  }
  if (version.major === undefined) return undefined
  return [version.major, version.minor, version.micro].filter(part => part !== undefined).map(String).join('.')
}

/** shuts the VM down if it runs, then destroys it with its disks; a VM already gone is fine */
async function destroyRestoredVm(xapi: XapiClient, vm: Ref): Promise<void> {
  let power: string
  try {
    power = await xapi.call<string>('VM.get_power_state', vm)
  } catch (error) {
    if (xapiErrorCode(error) === 'HANDLE_INVALID') return
    throw error
  }
  if (power !== 'Halted') await xapi.callAsync('VM.hard_shutdown', vm)
  await destroySnapshot(xapi, vm)
}

/** prepares the restored VM as XO does: no network interface, its start allowed, tagged and named */
async function prepare(xapi: XapiClient, vm: Ref): Promise<void> {
  for (const vif of await xapi.call<Ref[]>('VM.get_VIFs', vm)) await xapi.callAsync('VIF.destroy', vif)
  await xapi.call('VM.remove_from_blocked_operations', vm, 'start')
  await xapi.call('VM.add_tags', vm, HEALTH_CHECK_TAG)
  const name = await xapi.call<string>('VM.get_name_label', vm)
  await xapi.call('VM.set_name_label', vm, `${HEALTH_CHECK_NAME_PREFIX}${name}`)
}

/** runs a health check; never rejects: a failure is in the result (and was reported) */
export async function healthCheck(options: HealthCheckOptions): Promise<HealthCheckResult & { readonly failure?: BackupError }> {
  const xapi = withTransientRetry(options.xapi, options.xapiRetry)
  const { signal, restorePoint, sr, vm } = options
  const timeoutMs = options.timeoutMs ?? DEFAULT_HEALTH_CHECK_TIMEOUT_MS
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS
  const reporter = options.reporter
  const label = options.vmName === undefined ? `VM ${vm}` : `VM "${options.vmName}"`
  const start = Date.now()
  const facts: { restoredVm?: string; restoreMs?: number; bootMs?: number; guestTools?: string } = {}
  let restored: Ref | undefined
  let failure: BackupError | undefined
  try {
    const restoreTask = reporter?.child('restore', { restorePoint, sr })
    let result: RestoreVmResult
    try {
      result = await options.restore({
        handler: options.handler,
        restorePoint,
        xapi,
        sr,
        ...(restoreTask === undefined ? {} : { reporter: restoreTask }),
        ...(signal === undefined ? {} : { signal }),
        ...(options.xapiRetry === undefined ? {} : { xapiRetry: options.xapiRetry }),
      })
      // known at once: whatever fails from here on, the copy is destroyed
      restored = result.ref
      restoreTask?.end({ status: 'success', data: { vm: result.vm } })
    } catch (error) {
      restoreTask?.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
      throw error
    }
    facts.restoredVm = result.vm
    facts.restoreMs = Date.now() - start
    await prepare(xapi, restored)
    if (signal?.aborted === true) throw cancelled()

    const startTask = reporter?.child('vmstart', { vm: result.vm })
    try {
      const started = Date.now()
      const deadline = started + timeoutMs
      // start paused: no; force (skip the pre-boot checks): no
      await xapi.callAsync('VM.start', restored, false, false)
      const ref = restored
      const running = await waitFor(async () => ((await xapi.call<string>('VM.get_power_state', ref)) === 'Running' ? true : undefined), deadline, pollMs, signal)
      if (running === undefined) {
        throw new BackupError('HEALTH_CHECK_TIMEOUT', `${label} restored from ${restorePoint} was not Running ${seconds(timeoutMs)} after its start`, { vm, restorePoint })
      }
      startTask?.progress(50)
      const tools = await waitFor(() => guestToolsOf(xapi, ref), deadline, pollMs, signal)
      if (tools === undefined) {
        throw new BackupError(
          'HEALTH_CHECK_TIMEOUT',
          `${label} restored from ${restorePoint} started, but its guest tools did not report within ${seconds(timeoutMs)} (the timeout): it may not boot, or have no guest tools`,
          { vm, restorePoint }
        )
      }
      facts.bootMs = Date.now() - started
      facts.guestTools = tools
      startTask?.info(`guest tools ${tools} reported ${seconds(facts.bootMs)} after the start`, { bootMs: facts.bootMs, guestTools: tools })
      startTask?.end({ status: 'success', data: { bootMs: facts.bootMs, guestTools: tools } })
    } catch (error) {
      startTask?.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
      throw error
    }
  } catch (error) {
    const code: ErrorCode = error instanceof BackupError ? error.code : signal?.aborted === true ? 'CANCELLED' : 'HEALTH_CHECK_FAILED'
    const message = error instanceof Error ? error.message : String(error)
    failure = new BackupError(code, `health check of ${label}: ${message}`, { vm, restorePoint, ...(error instanceof BackupError ? error.context : {}) }, { cause: error })
  } finally {
    if (restored !== undefined) {
      try {
        // never left behind, even when cancelled: the destroy does not follow the signal
        await destroyRestoredVm(xapi, restored)
      } catch (error) {
        const message = `the restored copy ${facts.restoredVm ?? restored} could not be destroyed, destroy it by hand: ${error instanceof Error ? error.message : String(error)}`
        reporter?.warning(message, { vm: facts.restoredVm })
        failure ??= new BackupError('HEALTH_CHECK_FAILED', `health check of ${label}: ${message}`, { vm, restorePoint }, { cause: error })
      }
    }
  }
  const end = Date.now()
  const result: HealthCheckResult = {
    status: failure === undefined ? 'success' : 'failure',
    vm,
    ...(options.vmName === undefined ? {} : { vmName: options.vmName }),
    restorePoint,
    sr,
    start,
    end,
    timeoutMs,
    ...facts,
    ...(failure === undefined ? {} : { code: failure.code, error: failure.message }),
  }
  return failure === undefined ? result : { ...result, failure }
}
