/**
 * The plugin instance xo-server drives: `configure` (the configuration is the source of truth
 * for jobs), `load` (API methods, XO jobs and schedules), `unload` (all of it removed, runs in
 * progress cancelled and awaited). The job executor is registered once, by `createPlugin`,
 * because xo-server cannot unregister one; while unloaded it refuses to run.
 */
import { createHash, randomInt } from 'node:crypto'
import { join } from 'node:path'

import { BackupError } from '../errors.js'
import { destroyJobSnapshots } from '../lifecycle/reference-snapshot.js'
import { deleteJobBackups, deleteRestorePoint, forgetVmBackups } from '../repository/delete.js'
import { readMetadata } from '../repository/metadata.js'
import type { DeleteRestorePointResult, ForgetVmResult } from '../repository/delete.js'
import { buildApiMethods, API_NAMESPACE } from './api.js'
import type { DeleteJobResult, PluginApi } from './api.js'
import { assertIdentitiesKept, DEFAULT_HEALTH_CHECK_TIMEOUT_SECONDS, healthCheckOf, parseConfiguration, toJobSpec } from './configuration.js'
import type { ConfiguredJob, Job, ParsedConfiguration } from './configuration.js'
import { defaultEngine } from './engine.js'
import type { Engine, HealthCheckResult, ListedRestorePoint, VerifyReport } from './engine.js'
import { getRemoteHandler, getXapiOfSr, getXapiOfVm } from './environment.js'
import { JobExecutor } from './executor.js'
import { JobStore } from './job-store.js'
import { redactError } from './redact.js'
import { assertRestorePointId } from './references.js'
import type { RunRecord } from './run-history.js'
import { alreadyRunning, JobRunner, refreshBackupsListing } from './runner.js'
import type { RunResult } from './runner.js'
import type {
  CreateJobParams,
  DeleteJobParams,
  DeleteRestorePointParams,
  EditJobParams,
  ForgetVmParams,
  GetRunsParams,
  HealthCheckParams,
  JobRefParams,
  ListRestorePointsParams,
  RestoreParams,
  VerifyParams,
} from './schema.js'
import { TaskReporter } from './task-reporter.js'
import { JOB_TYPE, XoJobs } from './xo-jobs.js'
import type { XoApp, XoJobExecutor, XoPluginOptions } from './xo.js'

/** the plugin's id in xo-server: its package is `xo-server-continuous-delta` */
export const PLUGIN_ID = 'continuous-delta'

/** in the plugin's data dir: the runs and their logs, one file per job */
const RUN_HISTORY_DIR = 'runs'
/** where an earlier version kept its last 50 runs (moved into RUN_HISTORY_DIR once) */
const LEGACY_RUN_HISTORY_FILE = 'runs.json'

/**
 * The id given to a job added in XO's form (which cannot fill it in): derived from its name, so
 * that it is the same however many times the configuration is read before it is written back.
 */
export function formJobId(job: ConfiguredJob): string {
  return `job-${createHash('sha256').update(job.name.trim().toLowerCase()).digest('hex').slice(0, 20)}`
}

export class ContinuousDeltaPlugin implements PluginApi {
  readonly #xo: XoApp
  readonly #engine: Engine
  readonly #store: JobStore
  readonly #xoJobs: XoJobs
  readonly #runner: JobRunner
  readonly #executor: JobExecutor
  readonly #operations = new Set<{ readonly controller: AbortController; readonly done: Promise<unknown> }>()
  #parsed: ParsedConfiguration = parseConfiguration({})
  /** whether a configuration was applied (the first one, stored by xo-server, is taken as it is) */
  #configured = false
  /** ids of new jobs the plugin itself is writing into the configuration */
  readonly #writingIds = new Set<string>()
  #loaded = false
  /** jobs handed to XO's job runner whose run has not reached the executor yet */
  readonly #starting = new Set<string>()
  #removeApiMethods: (() => void) | undefined
  #writeBack: NodeJS.Immediate | undefined
  readonly #getDataDir: (() => Promise<string>) | undefined

  constructor(xo: XoApp, engine: Engine = defaultEngine, getDataDir?: () => Promise<string>) {
    this.#xo = xo
    this.#getDataDir = getDataDir
    this.#engine = engine
    this.#xoJobs = new XoJobs(xo)
    this.#runner = new JobRunner(engine, xo)
    this.#executor = new JobExecutor({
      isLoaded: () => this.#loaded,
      job: id => this.#store.get(id),
      settings: () => this.#parsed.settings,
      scheduleIdOf: id => this.#xoJobs.link(id)?.scheduleId,
      runner: this.#runner,
    })
    this.#store = new JobStore({
      current: () => this.#parsed,
      write: async configuration => {
        const fresh = configuration.jobs.flatMap(job => (job.id === undefined ? [] : [job.id]))
        for (const id of fresh) this.#writingIds.add(id)
        try {
          await xo.configurePlugin(PLUGIN_ID, configuration)
        } finally {
          for (const id of fresh) this.#writingIds.delete(id)
        }
      },
      references: xo,
    })
  }

  get loaded(): boolean {
    return this.#loaded
  }

  async configure(configuration: unknown): Promise<void> {
    const parsed = parseConfiguration(configuration, formJobId)
    if (this.#configured) assertIdentitiesKept(this.#parsed.jobs, parsed.jobs, configuration, this.#writingIds)
    this.#parsed = parsed
    this.#configured = true
    if (parsed.idsAssigned) this.#scheduleWriteBack(parsed)
    if (this.#loaded) await this.#xoJobs.sync(parsed.jobs)
  }

  async load(): Promise<void> {
    if (this.#loaded) return
    this.#removeApiMethods = this.#xo.addApiMethods({ [API_NAMESPACE]: buildApiMethods(this) })
    this.#loaded = true
    try {
      if (this.#getDataDir !== undefined) {
        const dataDir = await this.#getDataDir()
        await this.#runner.history.useDir(join(dataDir, RUN_HISTORY_DIR), join(dataDir, LEGACY_RUN_HISTORY_FILE))
      }
      await this.#xoJobs.sync(this.#parsed.jobs)
    } catch (error) {
      await this.unload()
      throw error
    }
  }

  async unload(): Promise<void> {
    this.#loaded = false
    this.#removeApiMethods?.()
    this.#removeApiMethods = undefined
    if (this.#writeBack !== undefined) clearImmediate(this.#writeBack)
    this.#writeBack = undefined
    const operations = [...this.#operations]
    for (const { controller } of operations) controller.abort(new BackupError('CANCELLED', 'the plugin is being unloaded'))
    await Promise.all([
      this.#xoJobs.clear(),
      this.#runner.abortAll('the plugin is being unloaded'),
      ...operations.map(operation => operation.done),
    ])
  }

  /** the executor of XO jobs of type `continuousDeltaBackup` (scheduled and manual runs) */
  get executeXoJob(): XoJobExecutor {
    return this.#executor.execute
  }

  // API ---------------------------------------------------------------------------------------

  createJob(params: CreateJobParams): Promise<string> {
    return this.#store.create(params)
  }

  editJob(params: EditJobParams): Promise<Job> {
    return this.#store.edit(params)
  }

  /**
   * Removes the job from the configuration (and XO), then destroys its reference snapshots on
   * the pools, and with `deleteBackups` its restore points on its remote. A VM whose pool is not
   * connected keeps its snapshot: the result says which and why.
   */
  async deleteJob({ id, deleteBackups = false }: DeleteJobParams): Promise<DeleteJobResult> {
    const job = this.#store.get(id)
    this.#assertIdle(job)
    await this.#store.delete(id)
    const snapshots: { vm: string; name: string }[] = []
    const failures: { vm: string; what: string; error: string }[] = []
    const restorePoints: string[] = []
    for (const vm of job.vms) {
      try {
        for (const name of await destroyJobSnapshots(getXapiOfVm(this.#xo, vm), vm, id)) snapshots.push({ vm, name })
      } catch (error) {
        failures.push({ vm, what: 'reference snapshot', error: redactError(error).message })
      }
    }
    if (deleteBackups) {
      const handler = await getRemoteHandler(this.#xo, job.remote)
      for (const vm of job.vms) {
        try {
          restorePoints.push(...(await deleteJobBackups(handler, vm, id)))
        } catch (error) {
          failures.push({ vm, what: 'restore points', error: redactError(error).message })
        }
      }
      refreshBackupsListing(this.#xo, job.remote)
    }
    return { id, name: job.name, snapshots, restorePoints, failures }
  }

  async deleteRestorePoint({ remote, restorePoint }: DeleteRestorePointParams): Promise<DeleteRestorePointResult> {
    assertRestorePointId(restorePoint)
    const handler = await getRemoteHandler(this.#xo, remote)
    try {
      return await this.#track(signal => deleteRestorePoint(handler, restorePoint, { signal }))
    } finally {
      refreshBackupsListing(this.#xo, remote)
    }
  }

  async forgetVm({ remote, vm, confirm }: ForgetVmParams): Promise<ForgetVmResult & { readonly snapshots: readonly string[] }> {
    if (confirm !== vm) {
      throw new BackupError('INVALID_PARAMETER', `forgetVm deletes every restore point of VM ${vm} on the remote: confirm with confirm=<the same VM uuid>; nothing was deleted`, { vm })
    }
    const handler = await getRemoteHandler(this.#xo, remote)
    let result: ForgetVmResult
    try {
      result = await this.#track(() => forgetVmBackups(handler, vm))
    } finally {
      refreshBackupsListing(this.#xo, remote)
    }
    // the reference snapshots of those chains could only base deltas on what is gone
    const snapshots: string[] = []
    for (const job of this.#store.list().filter(job => job.remote === remote && job.vms.includes(vm))) {
      try {
        snapshots.push(...(await destroyJobSnapshots(getXapiOfVm(this.#xo, vm), vm, job.id)))
      } catch {
        // its next run finds no restore point to base a delta on and exports full disks
      }
    }
    return { ...result, snapshots }
  }

  async getJobs(): Promise<readonly Job[]> {
    return this.#store.list()
  }

  async runJob({ id }: JobRefParams): Promise<RunResult> {
    const job = this.#store.get(id)
    // refused here, in our words, before XO's job runner refuses it with its internal id
    this.#assertIdle(job)
    const link = this.#xoJobs.link(id)
    if (link === undefined) {
      const { settings } = this.#parsed
      const healthCheck = healthCheckOf(job)
      return this.#runner.run(toJobSpec(job, settings), {
        trigger: 'manual',
        settings,
        report: { reportWhen: job.reportWhen, reportRecipients: job.reportRecipients },
        ...(healthCheck === undefined ? {} : { healthCheck }),
      })
    }
    // through XO's job runner, so that the run is in XO's logs like a scheduled one
    this.#starting.add(id)
    try {
      return await this.#executor.runThroughXo(this.#xo, link.xoJobId, job.name)
    } finally {
      this.#starting.delete(id)
    }
  }

  /**
   * XO's plugin test form: runs the named job now. Resolves when every VM was backed up (XO
   * shows a tick); otherwise rejects naming each VM that failed (XO shows the message and data).
   */
  async test(data: unknown): Promise<RunResult | { readonly checks: readonly HealthCheckResult[] }> {
    const wanted = typeof data === 'object' && data !== null ? Reflect.get(data, 'job') : undefined
    const jobs = this.#store.list()
    const key = typeof wanted === 'string' ? wanted.trim().toLowerCase() : ''
    const job = jobs.find(job => job.name.trim().toLowerCase() === key) ?? jobs.find(job => job.id === wanted)
    if (job === undefined) {
      throw new BackupError(
        'JOB_NOT_FOUND',
        `no job named "${String(wanted)}"; the jobs are: ${jobs.length === 0 ? '(none yet)' : jobs.map(job => `"${job.name}"`).join(', ')}`,
        { job: String(wanted) }
      )
    }
    if (Reflect.get(data as object, 'healthCheck') === true) return this.#testHealthChecks(job)
    const result = await this.runJob({ id: job.id })
    if (result.status === 'success') return result
    const failed = result.vms.filter(vm => vm.status === 'failure')
    throw new BackupError(
      'BACKUP_FAILED',
      `job "${job.name}": ${failed.length} of ${result.vms.length} VM(s) not backed up: ${failed.map(vm => `${vm.name ?? vm.vm}: ${vm.error ?? 'failed'}`).join('; ')}`,
      { job: job.id, status: result.status, vms: result.vms.map(vm => ({ vm: vm.name ?? vm.vm, status: vm.status, ...(vm.error === undefined ? {} : { error: vm.error }) })) }
    )
  }

  /** the test form's health check: each VM of the job, its newest restore point, one after the other */
  async #testHealthChecks(job: Job): Promise<{ readonly checks: readonly (HealthCheckResult & { readonly taskId?: string })[] }> {
    if (job.healthCheckSr === undefined) {
      throw new BackupError('INVALID_PARAMETER', `job "${job.name}" has no Health check SR: choose one in the job's settings above, save, then test again`, { job: job.id })
    }
    const checks: (HealthCheckResult & { readonly taskId?: string })[] = []
    const failures: string[] = []
    for (const vm of job.vms) {
      try {
        checks.push(await this.healthCheck({ job: job.id, vm }))
      } catch (error) {
        failures.push(redactError(error).message)
      }
    }
    if (failures.length === 0) return { checks }
    throw new BackupError('HEALTH_CHECK_FAILED', `job "${job.name}": ${failures.length} of ${job.vms.length} health check(s) failed: ${failures.join('; ')}`, { job: job.id })
  }

  async listRestorePoints({ remote, vm }: ListRestorePointsParams): Promise<readonly ListedRestorePoint[]> {
    const handler = await getRemoteHandler(this.#xo, remote)
    return this.#engine.listRestorePoints(handler, vm === undefined ? undefined : { vm })
  }

  async verify({ remote, vm, sample, seed }: VerifyParams): Promise<VerifyReport> {
    if (seed !== undefined && sample === undefined) throw new BackupError('INVALID_PARAMETER', 'seed goes with sample')
    const handler = await getRemoteHandler(this.#xo, remote)
    const remoteName = (await this.#xo.getRemote(remote)).name
    // an XO task whose progress follows the restore points checked
    const task = TaskReporter.create(this.#xo.tasks, {
      name: `verify of remote "${remoteName}"${vm === undefined ? '' : ` (VM ${vm})`}`,
      type: 'verify.continuousDelta',
      objectId: remote,
    })
    try {
      const report = await this.#engine.verifyRemote(handler, {
        ...(vm === undefined ? {} : { vm }),
        ...(sample === undefined ? {} : { sample: { percent: sample, seed: seed ?? randomInt(2 ** 31 - 1) } }),
        onProgress: percent => task.progress(Math.min(99, percent)),
      })
      task.end({ status: report.ok ? 'success' : 'failure', ...(report.ok ? { data: { restorePoints: report.restorePoints.length, blocks: report.read.blocks } } : { error: new BackupError('DATA_DAMAGED', `verify found problems in ${report.restorePoints.filter(point => !point.ok).length} restore point(s) and ${report.problems.length} other problem(s)`) }) })
      return report
    } catch (error) {
      task.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
      throw error
    } finally {
      await task.settled()
    }
  }

  async restore({ remote, restorePoint, sr, allowDamaged, newMacAddresses }: RestoreParams): Promise<string> {
    assertRestorePointId(restorePoint)
    const handler = await getRemoteHandler(this.#xo, remote)
    const xapi = getXapiOfSr(this.#xo, sr)
    return this.#track(async signal => {
      // named by the VM and the date of its restore point, as a user knows them
      const stored = await readMetadata(handler, restorePoint).catch(() => undefined)
      const name = stored === undefined ? `restore ${restorePoint}` : `restore of VM "${stored.vm.name_label}" (${new Date(stored.timestamp).toISOString()})`
      const reporter = TaskReporter.create(this.#xo.tasks, { name, type: 'restore.continuousDelta', objectId: sr, restorePoint })
      try {
        const { vm, missingDisks, damaged, notRestored } = await this.#engine.restoreVm({
          handler,
          restorePoint,
          xapi,
          sr,
          reporter,
          signal,
          allowDamaged: allowDamaged === true,
          newMacAddresses: newMacAddresses === true,
        })
        for (const disk of missingDisks) reporter.warning(`disk ${disk.name} was not restored: ${disk.reason}`, { vdi: disk.vdi })
        reporter.end({ status: 'success', data: { vm, ...(damaged.length > 0 ? { damaged } : {}), ...(notRestored.length > 0 ? { notRestored } : {}) } })
        return vm
      } catch (error) {
        reporter.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
        throw error
      } finally {
        await reporter.settled()
      }
    })
  }

  /**
   * Health-checks a restore point of a job (the VM's newest by default): restored to the SR,
   * started without network, its guest tools awaited, destroyed. In the run history and XO's
   * tasks; reported by the job's report settings. Rejects with the reason when the check fails.
   */
  async healthCheck({ job: id, vm, restorePoint, sr, timeout }: HealthCheckParams): Promise<HealthCheckResult & { readonly taskId?: string }> {
    const job = this.#store.get(id)
    this.#assertIdle(job)
    if (restorePoint !== undefined) assertRestorePointId(restorePoint)
    const srUuid = sr ?? job.healthCheckSr
    if (srUuid === undefined) {
      throw new BackupError('INVALID_PARAMETER', `job "${job.name}" has no health check SR: give sr=<the uuid of the SR to restore the copy to>`, { job: id })
    }
    getXapiOfSr(this.#xo, srUuid)
    const handler = await getRemoteHandler(this.#xo, job.remote)
    const points = await this.#engine.listRestorePoints(handler, { vm, jobId: job.id })
    // by default the newest restore point that can be restored (a damaged one would only fail the check)
    const point = restorePoint === undefined ? points.filter(candidate => candidate.status === 'restorable').at(-1) : points.find(candidate => candidate.id === restorePoint)
    if (point === undefined) {
      throw new BackupError(
        'RESTORE_POINT_NOT_FOUND',
        restorePoint === undefined
          ? `job "${job.name}" has no restore point of VM ${vm} on its remote that can be restored: nothing to check`
          : `${restorePoint} is not a restore point of VM ${vm} written by job "${job.name}" (listRestorePoints lists them)`,
        { job: id, vm, ...(restorePoint === undefined ? {} : { restorePoint }) }
      )
    }
    const { settings } = this.#parsed
    return this.#runner.healthCheck(toJobSpec(job, settings), {
      vm,
      vmName: point.vmName,
      restorePoint: point.id,
      sr: srUuid,
      timeoutMs: (timeout ?? job.healthCheckTimeout ?? DEFAULT_HEALTH_CHECK_TIMEOUT_SECONDS) * 1000,
      report: { reportWhen: job.reportWhen, reportRecipients: job.reportRecipients },
    })
  }

  async getRuns(filter: GetRunsParams = {}): Promise<readonly RunRecord[]> {
    return this.#runner.history.list(filter)
  }

  // -------------------------------------------------------------------------------------------

  /** refuses a second operation of a job that runs (or is being health-checked), in our words */
  #assertIdle(job: Job): void {
    const activity = this.#starting.has(job.id) ? 'run' : this.#runner.activityOf(job.id)
    if (activity !== undefined) throw alreadyRunning(job.name, job.id, activity)
  }

  /** runs an operation that unload cancels and waits for */
  async #track<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController()
    const done = fn(controller.signal)
    const operation = { controller, done: done.catch(() => undefined) }
    this.#operations.add(operation)
    try {
      return await done
    } finally {
      this.#operations.delete(operation)
    }
  }

  /** stores the ids given to jobs added in XO's form, once the current configure is over */
  #scheduleWriteBack(parsed: ParsedConfiguration): void {
    if (this.#writeBack !== undefined) clearImmediate(this.#writeBack)
    this.#writeBack = setImmediate(() => {
      this.#writeBack = undefined
      if (this.#parsed !== parsed) return
      this.#xo.configurePlugin(PLUGIN_ID, parsed.configuration).catch(() => {
        // the ids are derived from the names: the next configure gives the same ones
      })
    })
  }
}

export function createPlugin({ xo, getDataDir }: XoPluginOptions, engine: Engine = defaultEngine): ContinuousDeltaPlugin {
  const plugin = new ContinuousDeltaPlugin(xo, engine, getDataDir)
  xo.registerJobExecutor(JOB_TYPE, plugin.executeXoJob)
  return plugin
}
