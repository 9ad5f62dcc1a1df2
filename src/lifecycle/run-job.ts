/**
 * A job run: the backup of each of its VMs, `job.concurrency` at a time. One VM failing does not
 * stop the others; the run is `success` when every VM succeeded, `failure` when none did,
 * `partial` otherwise. Aborting `env.signal` cancels: running VMs undo what they started, the
 * others do not start.
 */
import { randomUUID } from 'node:crypto'
import { BackupError } from '../errors.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'
import { withTransientRetry } from '../xapi/retry.js'
import { Housekeeping } from './housekeeping.js'
import type { JobEnvironment, JobRunResult, JobSpec, VmRunResult } from './job.js'
import { createBackupLifecycle, runVm } from './run-vm.js'
import type { BackupLifecycle } from './run-vm.js'

export interface RunJobOptions {
  /** the lifecycle to run each VM through (default: the product's hooks only) */
  readonly lifecycle?: BackupLifecycle
}

function statusOf(vms: readonly VmRunResult[]): JobRunResult['status'] {
  const failed = vms.filter(vm => vm.status === 'failure').length
  return failed === 0 ? 'success' : failed === vms.length ? 'failure' : 'partial'
}

function failedVm(vm: string, error: unknown, name?: string): VmRunResult {
  const message = error instanceof Error ? error.message : String(error)
  const code = error instanceof BackupError ? error.code : typeof (error as { code?: unknown })?.code === 'string' ? String((error as { code: string }).code) : 'BACKUP_FAILED'
  return {
    vm,
    ...(name === undefined ? {} : { name }),
    status: 'failure',
    error: message,
    failureDetail: { code, message },
    disks: [],
    excluded: [],
    warnings: [],
  }
}

/** the VM's name in its pool's cache, if the pool holds it */
function vmNameOf(xapi: XapiClient, vm: string): string | undefined {
  for (const record of Object.values(xapi.objects.all)) {
    if (record.$type === 'VM' && record.uuid === vm && typeof record['name_label'] === 'string') return record['name_label']
  }
  return undefined
}

interface VmBackup {
  readonly result: VmRunResult
  /** what the VM's run left going on (see housekeeping.ts) */
  readonly housekeeping?: Housekeeping
}

async function backupVm(job: JobSpec, env: JobEnvironment, vm: string, signal: AbortSignal, lifecycle: BackupLifecycle): Promise<VmBackup> {
  const start = Date.now()
  const backup = await backupVmUntimed(job, env, vm, signal, lifecycle)
  return { ...backup, result: { ...backup.result, start, end: Date.now() } }
}

async function backupVmUntimed(job: JobSpec, env: JobEnvironment, vm: string, signal: AbortSignal, lifecycle: BackupLifecycle): Promise<VmBackup> {
  let connected: readonly [XapiClient, RemoteHandler] | undefined
  let failedToConnect: unknown
  if (!signal.aborted) {
    connected = await Promise.all([env.getXapi(vm), env.getRemoteHandler(job.remoteId)] as const).catch((error: unknown) => {
      failedToConnect = error
      return undefined
    })
  }
  const name = connected === undefined ? undefined : vmNameOf(connected[0], vm)
  const label = name === undefined ? `VM ${vm}` : `VM "${name}"`
  let housekeeping: Housekeeping | undefined
  // named by the VM's name; `type`/`id` as XO's backup logs know a VM task
  const reporter = env.reporter.child(label, {
    type: 'VM',
    id: vm,
    vm,
    ...(name === undefined ? {} : { name_label: name }),
  })
  try {
    if (signal.aborted) {
      throw new BackupError('CANCELLED', 'the run was cancelled before this VM started', { vm })
    }
    if (connected === undefined) throw failedToConnect
    const [xapi, handler] = connected
    housekeeping = new Housekeeping(env.reporter, label)
    const { failure, ...backup } = await runVm({
      job,
      vmUuid: vm,
      // every XAPI call of the run goes through the one retry layer
      xapi: withTransientRetry(xapi, env.xapiRetry),
      handler,
      reporter,
      signal,
      lifecycle,
      housekeeping,
      ...(env.settings === undefined ? {} : { settings: env.settings }),
    })
    let result: VmRunResult = backup
    let error: Error | undefined = failure
    if (failure === undefined && env.healthCheck !== undefined && backup.restorePoint !== undefined) {
      // as XO does: after the backup, the restore point it wrote is checked; a failed check fails the VM
      const checkReporter = reporter.child('health check', { restorePoint: backup.restorePoint })
      const { failure: checkFailure, ...check } = await env.healthCheck({
        vm,
        ...(backup.name === undefined ? {} : { vmName: backup.name }),
        restorePoint: backup.restorePoint,
        reporter: checkReporter,
        signal,
      })
      checkReporter.end(checkFailure === undefined ? { status: 'success', data: { ...check } } : { status: 'failure', error: checkFailure })
      result = {
        ...backup,
        healthCheck: check,
        ...(checkFailure === undefined
          ? {}
          : { status: 'failure', error: checkFailure.message, failureDetail: { code: check.code ?? 'HEALTH_CHECK_FAILED', step: 'healthCheck', message: checkFailure.message } }),
      }
      error = checkFailure
    }
    reporter.end({
      status: result.status,
      ...(error === undefined ? {} : { error }),
      data: { disks: result.disks, excluded: result.excluded, restorePoint: result.restorePoint },
    })
    return { result, housekeeping }
  } catch (error) {
    reporter.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
    return { result: failedVm(vm, error, name), housekeeping }
  }
}

export async function runJob(job: JobSpec, env: JobEnvironment, options: RunJobOptions = {}): Promise<JobRunResult> {
  const start = Date.now()
  const lifecycle = options.lifecycle ?? createBackupLifecycle()
  const signal = env.signal ?? new AbortController().signal
  const backups: VmBackup[] = new Array(job.vms.length)

  let next = 0
  const worker = async (): Promise<void> => {
    while (next < job.vms.length) {
      const index = next++
      const vm = job.vms[index]!
      backups[index] = await backupVm(job, env, vm, signal, lifecycle)
    }
  }
  const concurrency = Math.max(1, Math.min(job.concurrency, job.vms.length))
  await Promise.all(Array.from({ length: concurrency }, worker))
  // the previous references the VMs' runs left being destroyed: the job ends once they are
  await Promise.all(backups.map(backup => backup.housekeeping?.settled()))
  const results = backups.map(({ result, housekeeping }) =>
    housekeeping === undefined || housekeeping.warnings.length === 0 ? result : { ...result, warnings: [...result.warnings, ...housekeeping.warnings] },
  )

  const result: JobRunResult = { id: randomUUID(), jobId: job.id, status: statusOf(results), start, end: Date.now(), vms: results }
  env.reporter.info(`job "${job.name}": ${result.status}`, { status: result.status, vms: results.length })
  return result
}
