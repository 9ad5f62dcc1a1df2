/**
 * The executor of XO jobs of type `continuousDeltaBackup`: what XO's scheduler (and a manual run
 * through XO's job runner) calls. It looks the configured job up by the XO job's `continuousDeltaJobId`, runs it,
 * and hands the result back to a manual caller: `runThroughXo` passes a request id in the run's
 * `data`, the executor files the result under it.
 */
import { randomUUID } from 'node:crypto'

import { BackupError } from '../errors.js'
import { healthCheckOf, toJobSpec } from './configuration.js'
import type { Job, Settings } from './configuration.js'
import type { JobRunner, RunResult } from './runner.js'
import { configuredJobIdOf } from './xo-jobs.js'
import type { XoApp, XoJobExecutorParams } from './xo.js'

export interface ExecutorHost {
  isLoaded(): boolean
  /** the configured job; throws `JOB_NOT_FOUND` */
  job(id: string): Job
  settings(): Settings
  /** the XO schedule of a configured job, if it has one */
  scheduleIdOf(jobId: string): string | undefined
  readonly runner: JobRunner
}

const RUN_REQUEST = 'continuousDeltaRunRequest'

function runRequestOf(data: unknown): string | undefined {
  if (typeof data !== 'object' || data === null) return undefined
  const value: unknown = Reflect.get(data, RUN_REQUEST)
  return typeof value === 'string' ? value : undefined
}

export class JobExecutor {
  readonly #host: ExecutorHost
  readonly #results = new Map<string, RunResult>()

  constructor(host: ExecutorHost) {
    this.#host = host
  }

  /** registered once with `xo.registerJobExecutor`; refuses to run while the plugin is unloaded */
  readonly execute = async ({ job: xoJob, schedule, data, cancelToken, jobUpdateFct }: XoJobExecutorParams): Promise<string> => {
    const host = this.#host
    if (!host.isLoaded()) throw new Error('the continuous-delta plugin is not loaded: its jobs do not run')
    const jobId = configuredJobIdOf(xoJob)
    if (jobId === undefined) {
      throw new BackupError('JOB_NOT_FOUND', `XO job ${xoJob.id} is not a continuous delta job`)
    }
    const job = host.job(jobId)
    // a schedule fired just before it was disabled
    if (schedule !== undefined && !job.enabled) return 'skipped'
    const settings = host.settings()
    const healthCheck = healthCheckOf(job)
    const result = await host.runner.run(toJobSpec(job, settings, schedule?.id ?? host.scheduleIdOf(job.id)), {
      trigger: schedule === undefined ? 'manual' : 'schedule',
      settings,
      ...(cancelToken?.promise === undefined ? {} : { cancel: cancelToken.promise }),
      ...(jobUpdateFct === undefined ? {} : { onTask: jobUpdateFct }),
      report: { reportWhen: job.reportWhen, reportRecipients: job.reportRecipients },
      ...(healthCheck === undefined ? {} : { healthCheck }),
    })
    const request = runRequestOf(data)
    if (request !== undefined) this.#results.set(request, result)
    return result.status
  }

  /** runs an XO job now through XO's job runner (so that it is in XO's logs) and returns its result */
  async runThroughXo(xo: Pick<XoApp, 'runJobSequence'>, xoJobId: string, jobName: string): Promise<RunResult> {
    const request = randomUUID()
    try {
      await xo.runJobSequence([xoJobId], undefined, { [RUN_REQUEST]: request })
      const result = this.#results.get(request)
      if (result === undefined) throw new Error(`the run of job ${jobName} reported no result`)
      return result
    } finally {
      this.#results.delete(request)
    }
  }
}
