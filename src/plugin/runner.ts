/**
 * Runs a job now: one XO task per run (subtasks per VM and disk, filled in by the lifecycle
 * through the reporter), a log kept in the run history, one run at a time per job, and an
 * AbortSignal that `abortAll` (unload) and XO's cancel token both trip.
 */
import { randomUUID } from 'node:crypto'

import { BackupError } from '../errors.js'
import type { HealthCheckResult, JobEnvironment, JobRunResult, JobSpec, RunReporter } from '../lifecycle/job.js'
import type { Settings } from './configuration.js'
import type { Engine } from './engine.js'
import { getRemoteHandler, getXapiOfSr, getXapiOfVm } from './environment.js'
import type { ConnectionHost } from './environment.js'
import { redactError, redactText } from './redact.js'
import { RunHistory } from './run-history.js'
import type { RunRecord } from './run-history.js'
import { LogReporter, TeeReporter } from './run-log.js'
import { TaskReporter } from './task-reporter.js'
import { buildHealthCheckReport, buildReport, sendReport } from './report.js'
import type { Report, ReportSettings } from './report.js'
import type { XoApp, XoReportTransports, XoTasks } from './xo.js'

export type RunnerHost = ConnectionHost & XoReportTransports & Pick<XoApp, 'invalidateVmBackupsListing'> & { readonly tasks: Pick<XoTasks, 'create'> }

export interface RunOptions {
  readonly trigger: 'manual' | 'schedule'
  readonly settings: Settings
  /** settles when XO cancels the run */
  readonly cancel?: PromiseLike<unknown>
  /** told the id of the run's XO task once it exists */
  readonly onTask?: (taskId: string) => unknown
  /** when and to whom the run's report is sent */
  readonly report?: ReportSettings
  /** the job's health checks: every `every` runs, on `sr` */
  readonly healthCheck?: JobHealthCheck
}

interface JobHealthCheck {
  readonly every: number
  readonly sr: string
  readonly timeoutMs: number
}

/** what a run returns to API callers and to XO: the lifecycle's result plus the XO task */
export type RunResult = JobRunResult & { readonly taskId?: string }

export interface HealthCheckRunOptions {
  /** the backed-up VM, its name, and the restore point to check */
  readonly vm: string
  readonly vmName?: string
  readonly restorePoint: string
  /** the SR the copy is restored to */
  readonly sr: string
  readonly timeoutMs: number
  readonly report?: ReportSettings
}

/** a health check's result with its free text redacted */
function redactHealthCheck(result: HealthCheckResult): HealthCheckResult {
  return result.error === undefined ? result : { ...result, error: redactText(result.error) }
}

/** the lifecycle's result with every free text redacted */
export function redactRunResult(result: JobRunResult): JobRunResult {
  return {
    ...result,
    vms: result.vms.map(vm => ({
      ...vm,
      ...(vm.error === undefined ? {} : { error: redactText(vm.error) }),
      ...(vm.failureDetail === undefined ? {} : { failureDetail: { ...vm.failureDetail, message: redactText(vm.failureDetail.message) } }),
      warnings: vm.warnings.map(redactText),
      excluded: vm.excluded.map(disk => ({ ...disk, reason: redactText(disk.reason) })),
      ...(vm.healthCheck === undefined ? {} : { healthCheck: redactHealthCheck(vm.healthCheck) }),
    })),
  }
}

/**
 * A failed run's result in one line, naming each failure: the VM, the step and disk it failed
 * at, the error's code and message, e.g. `1 of 2 VM(s) failed: VM "web" (step transfer, disk
 * "system"): TRANSFER_FAILED: …`.
 */
function describeFailures(result: JobRunResult): string {
  const failed = result.vms.filter(vm => vm.status === 'failure')
  const each = failed.map(vm => {
    const detail = vm.failureDetail
    const where = [detail?.step === undefined ? undefined : `step ${detail.step}`, detail?.disk === undefined ? undefined : `disk "${detail.disk}"`].filter(part => part !== undefined)
    const label = vm.name === undefined ? `VM ${vm.vm}` : `VM "${vm.name}"`
    return `${label}${where.length === 0 ? '' : ` (${where.join(', ')})`}: ${detail === undefined ? (vm.error ?? 'failed') : `${detail.code}: ${detail.message}`}`
  })
  return `${failed.length} of ${result.vms.length} VM(s) failed: ${each.join('; ')}`
}

/** drops XO's cache of the remote's backup listing (a minute otherwise), when this xo-server has one */
export function refreshBackupsListing(xo: Pick<XoApp, 'invalidateVmBackupsListing'>, remoteId: string): void {
  try {
    void Promise.resolve(xo.invalidateVmBackupsListing?.(remoteId)).catch(() => undefined)
  } catch {
    // the listing refreshes itself within a minute anyway
  }
}

/** what a second run of a running job is refused with */
export function alreadyRunning(name: string, id: string, activity: 'run' | 'health check' = 'run'): BackupError {
  return new BackupError(
    'JOB_RUNNING',
    activity === 'run'
      ? `job "${name}" is already running: a job runs once at a time; wait for its run to end, or cancel its task`
      : `job "${name}" is busy with a health check: a job runs once at a time; wait for the check to end, or cancel its task`,
    { job: id }
  )
}

export class JobRunner {
  readonly #engine: Engine
  readonly #xo: RunnerHost
  readonly #history: RunHistory
  readonly #running = new Map<string, { readonly controller: AbortController; readonly done: Promise<unknown>; readonly activity: 'run' | 'health check' }>()

  constructor(engine: Engine, xo: RunnerHost, history = new RunHistory()) {
    this.#engine = engine
    this.#xo = xo
    this.#history = history
  }

  get history(): RunHistory {
    return this.#history
  }

  /** what the job is busy with, if anything */
  activityOf(jobId: string): 'run' | 'health check' | undefined {
    return this.#running.get(jobId)?.activity
  }

  #assertIdle(spec: JobSpec): void {
    const running = this.#running.get(spec.id)
    if (running !== undefined) throw alreadyRunning(spec.name, spec.id, running.activity)
  }

  async run(spec: JobSpec, { trigger, settings, cancel, onTask, report, healthCheck }: RunOptions): Promise<RunResult> {
    this.#assertIdle(spec)
    const controller = new AbortController()
    const done = this.#run(spec, trigger, settings, controller, onTask, report, healthCheck)
    this.#running.set(spec.id, { controller, done: done.catch(() => undefined), activity: 'run' })
    cancel?.then(() => controller.abort(new BackupError('CANCELLED', 'the run was cancelled', { job: spec.id })), () => undefined)
    try {
      return await done
    } finally {
      this.#running.delete(spec.id)
    }
  }

  /**
   * Health-checks one restore point of the job (restore, start, guest tools, destroy) as an
   * operation of the job: never at the same time as one of its runs. Recorded in the run history
   * (`kind: 'healthCheck'`) with its log, as an XO task, and reported by the job's report settings.
   * Resolves with the result when the check passed; rejects with its error otherwise.
   */
  async healthCheck(spec: JobSpec, options: HealthCheckRunOptions): Promise<HealthCheckResult & { readonly taskId?: string }> {
    this.#assertIdle(spec)
    const controller = new AbortController()
    const done = this.#healthCheck(spec, options, controller)
    this.#running.set(spec.id, { controller, done: done.catch(() => undefined), activity: 'health check' })
    try {
      return await done
    } finally {
      this.#running.delete(spec.id)
    }
  }

  async #healthCheck(spec: JobSpec, options: HealthCheckRunOptions, controller: AbortController): Promise<HealthCheckResult & { readonly taskId?: string }> {
    const xo = this.#xo
    const { signal } = controller
    const label = options.vmName === undefined ? `VM ${options.vm}` : `VM "${options.vmName}"`
    // XO's own health check task: `backup.vm.healthCheck`, its object the backup checked
    const task = TaskReporter.create(xo.tasks, {
      name: `health check of ${label}`,
      type: 'backup.vm.healthCheck',
      objectId: options.restorePoint,
      jobId: spec.id,
      jobName: spec.name,
      vm: options.vm,
      restorePoint: options.restorePoint,
      sr: options.sr,
    })
    const record: RunRecord = await this.#history.start({
      id: randomUUID(),
      kind: 'healthCheck',
      jobId: spec.id,
      jobName: spec.name,
      trigger: 'manual',
      start: Date.now(),
      status: 'running',
      log: [],
    })
    const reporter = new TeeReporter(task, new LogReporter(record.log))
    cancelFromTask(task, controller, `the health check of ${label} was cancelled from its task`, spec.id)
    try {
      const handler = await getRemoteHandler(xo, spec.remoteId)
      const xapi = getXapiOfSr(xo, options.sr)
      const { failure, ...result } = await this.#engine.healthCheck({
        handler,
        xapi,
        vm: options.vm,
        ...(options.vmName === undefined ? {} : { vmName: options.vmName }),
        restorePoint: options.restorePoint,
        sr: options.sr,
        timeoutMs: options.timeoutMs,
        reporter,
        signal,
      })
      record.healthCheck = redactHealthCheck(result)
      if (failure !== undefined) throw failure
      record.status = 'success'
      reporter.end({ status: 'success', data: { ...record.healthCheck } })
      const taskId = await task.id()
      return { ...result, ...(taskId === undefined ? {} : { taskId }) }
    } catch (error) {
      failRecord(record, reporter, error, signal)
      throw error
    } finally {
      await this.#finish(record, task, options.report, () =>
        buildHealthCheckReport({
          jobName: spec.name,
          start: record.start,
          end: record.end!,
          ...(record.healthCheck === undefined ? {} : { result: record.healthCheck }),
          ...(record.error === undefined ? {} : { error: record.error.message }),
        }),
      )
    }
  }

  /** the health check of a run's VMs: their new restore point restored to the job's SR */
  #checker(spec: JobSpec, { sr, timeoutMs }: JobHealthCheck): NonNullable<JobEnvironment['healthCheck']> {
    return async ({ vm, vmName, restorePoint, reporter, signal }) => {
      const start = Date.now()
      try {
        const handler = await getRemoteHandler(this.#xo, spec.remoteId)
        const xapi = getXapiOfSr(this.#xo, sr)
        return await this.#engine.healthCheck({ handler, xapi, vm, ...(vmName === undefined ? {} : { vmName }), restorePoint, sr, timeoutMs, reporter, signal })
      } catch (error) {
        // the SR is gone, or the remote unreachable: nothing was restored
        const failure = error instanceof BackupError ? error : new BackupError('HEALTH_CHECK_FAILED', error instanceof Error ? error.message : String(error), { vm, restorePoint })
        const message = `health check of ${vmName === undefined ? `VM ${vm}` : `VM "${vmName}"`}: ${failure.message}`
        return { status: 'failure', vm, ...(vmName === undefined ? {} : { vmName }), restorePoint, sr, start, end: Date.now(), timeoutMs, code: failure.code, error: message, failure: new BackupError(failure.code, message, failure.context, { cause: failure }) }
      }
    }
  }

  /** the end of a recorded operation (a run or a health check): its task settled, its report sent, its record written */
  async #finish(record: RunRecord, task: TaskReporter, report: ReportSettings | undefined, build: () => Report): Promise<void> {
    record.end = Date.now()
    const taskId = await task.id()
    if (taskId !== undefined) record.taskId = taskId
    await task.settled()
    if (report !== undefined) {
      for (const failure of await sendReport(this.#xo, report, build())) {
        record.log.push({ time: Date.now(), scope: [], level: 'warning', message: `the report was not sent by ${failure}` })
      }
    }
    await this.#history.finish(record)
  }

  /** cancels every run in progress and resolves once they have all stopped */
  async abortAll(reason: string): Promise<void> {
    const runs = [...this.#running.values()]
    for (const { controller } of runs) controller.abort(new BackupError('CANCELLED', reason))
    await Promise.all(runs.map(run => run.done))
  }

  async #run(
    spec: JobSpec,
    trigger: RunOptions['trigger'],
    settings: Settings,
    controller: AbortController,
    onTask?: RunOptions['onTask'],
    report?: ReportSettings,
    healthCheck?: JobHealthCheck
  ): Promise<RunResult> {
    const xo = this.#xo
    const { signal } = controller
    const number = (await this.#history.lastRunNumber(spec.id).catch(() => 0)) + 1
    const task = TaskReporter.create(xo.tasks, {
      name: `continuous delta backup ${spec.name}`,
      type: 'backup.continuousDelta',
      objectId: spec.id,
      jobId: spec.id,
      jobName: spec.name,
      trigger,
    })
    const record: RunRecord = await this.#history.start({
      id: randomUUID(),
      kind: 'backup',
      jobId: spec.id,
      jobName: spec.name,
      trigger,
      number,
      ...(spec.scheduleId === undefined ? {} : { scheduleId: spec.scheduleId }),
      start: Date.now(),
      status: 'running',
      log: [],
    })
    const reporter = new TeeReporter(task, new LogReporter(record.log))
    void task.id().then(async taskId => {
      if (taskId === undefined) return
      record.taskId = taskId
      await onTask?.(taskId)
    }).catch(() => {
      // linking the task to XO's run log is a nicety: the run goes on without it
    })
    cancelFromTask(task, controller, `the run of job ${spec.name} was cancelled from its task`, spec.id)
    const env: JobEnvironment = {
      getXapi: async vm => getXapiOfVm(xo, vm),
      getRemoteHandler: remoteId => getRemoteHandler(xo, remoteId),
      reporter,
      signal,
      settings: { useVhdDirectory: settings.useVhdDirectory, transferTimeoutMs: settings.transferTimeoutSeconds * 1000 },
      ...(healthCheck !== undefined && number % healthCheck.every === 0 ? { healthCheck: this.#checker(spec, healthCheck) } : {}),
    }
    try {
      const result = redactRunResult(await this.#engine.runJob(spec, env))
      record.result = result
      if (signal.aborted) throw new BackupError('CANCELLED', `the run of job ${spec.name} was cancelled`, { job: spec.id }, { cause: signal.reason })
      // XO's backup logs give a run the status of this task: a VM that failed fails the run
      const failed = result.vms.filter(vm => vm.status === 'failure')
      if (failed.length === 0) reporter.end({ status: 'success', data: { status: result.status } })
      else {
        const error = new BackupError('BACKUP_FAILED', describeFailures(result), { job: spec.id })
        record.error = redactError(error)
        reporter.end({ status: 'failure', error })
      }
      record.status = result.status
      const taskId = await task.id()
      return { ...result, ...(taskId === undefined ? {} : { taskId }) }
    } catch (error) {
      failRecord(record, reporter, error, signal)
      throw error
    } finally {
      await this.#finish(record, task, report, () =>
        buildReport({ jobName: spec.name, start: record.start, end: record.end!, ...(record.result === undefined ? {} : { result: record.result }), ...(record.error === undefined ? {} : { error: record.error.message }) }),
      )
      // a run adds a restore point, or merges and removes some: XO's restore view must not show the old set
      refreshBackupsListing(xo, spec.remoteId)
    }
  }
}

/** aborting the operation's task in XO cancels the operation */
function cancelFromTask(task: TaskReporter, controller: AbortController, message: string, job: string): void {
  void task.abortSignal().then(taskSignal => {
    const abort = (): void => controller.abort(new BackupError('CANCELLED', message, { job }))
    if (taskSignal?.aborted === true) abort()
    else taskSignal?.addEventListener('abort', abort, { once: true })
  })
}

/** a recorded operation that threw: failed, or cancelled when its signal was aborted */
function failRecord(record: RunRecord, reporter: RunReporter, error: unknown, signal: AbortSignal): void {
  reporter.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
  record.status = signal.aborted ? 'cancelled' : 'failure'
  record.error = redactError(error)
}
