/**
 * Keeps one XO job (type `continuousDeltaBackup`, `continuousDeltaJobId` = the plugin's job id) and at most one
 * XO schedule per configured job, so that XO's scheduler fires enabled jobs on their cron and
 * their runs appear in XO's backup logs. `sync` makes XO match the configuration (creating,
 * renaming and removing what differs); `clear` removes them all. Calls are applied one at a time.
 */
import type { Job } from './configuration.js'
import { DEFAULT_TIMEZONE } from './schedule.js'
import type { XoApp, XoJob, XoSchedule } from './xo.js'

export const JOB_TYPE = 'continuousDeltaBackup'

/**
 * The property of an XO job naming the plugin's job. Not XO's `key`: xo-server keeps a run in its
 * backup logs (Backup → Logs) only when the job's type is `backup` or it has no `key`, and `backup`
 * is XO's own engine's type. An XO job with a `key` (earlier versions) is replaced.
 */
export const JOB_ID_PROPERTY = 'continuousDeltaJobId'

/**
 * A string as the plugin writes it into an XO job. xo-server's job collection stores every
 * property as a string and reads each back through `JSON.parse` when it parses: a job id `123` or
 * a name `2024` would come back as numbers (and the job be taken for another). JSON-encoded, a
 * string reads back as itself; one written raw by an earlier version (a uuid, a name that is no
 * JSON) reads back the same too.
 */
function asXoJobString(value: string): string {
  return JSON.stringify(value)
}

/** the plugin's job id an XO job of its type carries */
export function configuredJobIdOf(xoJob: XoJob): string | undefined {
  if (xoJob.type !== JOB_TYPE || xoJob.key !== undefined) return undefined
  const id = xoJob[JOB_ID_PROPERTY]
  return typeof id === 'string' ? id : undefined
}

export type XoJobsHost = Pick<
  XoApp,
  'createJob' | 'updateJob' | 'getAllJobs' | 'removeJob' | 'createSchedule' | 'getAllSchedules' | 'deleteSchedule'
>

export interface XoJobLink {
  readonly xoJobId: string
  readonly scheduleId?: string
}

function wantedSchedule(job: Job): { cron: string; timezone: string; enabled: boolean } | undefined {
  if (job.schedule === undefined) return undefined
  return { cron: job.schedule.cron, timezone: job.schedule.timezone ?? DEFAULT_TIMEZONE, enabled: job.enabled === true }
}

function sameSchedule(schedule: XoSchedule, wanted: { cron: string; timezone: string; enabled: boolean }): boolean {
  return schedule.cron === wanted.cron && (schedule.timezone ?? DEFAULT_TIMEZONE) === wanted.timezone && schedule.enabled === wanted.enabled
}

export class XoJobs {
  readonly #xo: XoJobsHost
  #links = new Map<string, XoJobLink>()
  #queue: Promise<unknown> = Promise.resolve()

  constructor(xo: XoJobsHost) {
    this.#xo = xo
  }

  /** the XO job and schedule of a configured job, as of the last sync */
  link(jobId: string): XoJobLink | undefined {
    return this.#links.get(jobId)
  }

  /** the configured job id of an XO job */
  jobIdOf(xoJob: XoJob): string | undefined {
    return configuredJobIdOf(xoJob)
  }

  sync(jobs: readonly Job[]): Promise<void> {
    return this.#serialize(() => this.#sync(jobs))
  }

  clear(): Promise<void> {
    return this.#serialize(() => this.#sync([]))
  }

  async #sync(jobs: readonly Job[]): Promise<void> {
    const xo = this.#xo
    const wanted = new Map(jobs.map(job => [job.id, job]))
    const links = new Map<string, XoJobLink>()

    const xoJobs = new Map<string, XoJob>()
    for (const xoJob of await xo.getAllJobs(JOB_TYPE)) {
      const key = configuredJobIdOf(xoJob)
      if (xoJob.type !== JOB_TYPE) continue
      if (key === undefined || !wanted.has(key) || xoJobs.has(key)) {
        await xo.removeJob(xoJob.id) // XO removes its schedules with it
      } else {
        xoJobs.set(key, xoJob)
      }
    }

    const schedules = await xo.getAllSchedules()
    for (const job of jobs) {
      let xoJob = xoJobs.get(job.id)
      if (xoJob === undefined) {
        xoJob = await xo.createJob({ type: JOB_TYPE, name: asXoJobString(job.name), [JOB_ID_PROPERTY]: asXoJobString(job.id) })
      } else if (xoJob.name !== job.name) {
        await xo.updateJob({ id: xoJob.id, name: asXoJobString(job.name) })
      }

      const schedule = wantedSchedule(job)
      let kept: XoSchedule | undefined
      for (const existing of schedules) {
        if (existing.jobId !== xoJob.id) continue
        if (kept === undefined && schedule !== undefined && sameSchedule(existing, schedule)) kept = existing
        else await xo.deleteSchedule(existing.id)
      }
      if (kept === undefined && schedule !== undefined) {
        kept = await xo.createSchedule({ ...schedule, jobId: xoJob.id, name: job.name })
      }
      links.set(job.id, { xoJobId: xoJob.id, ...(kept === undefined ? {} : { scheduleId: kept.id }) })
    }
    this.#links = links
  }

  #serialize(fn: () => Promise<void>): Promise<void> {
    const result = this.#queue.then(fn)
    this.#queue = result.catch(() => undefined)
    return result
  }
}
