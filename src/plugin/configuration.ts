/**
 * The plugin configuration: the single source of truth for jobs. xo-server checks its shape with
 * `configurationSchema` (the form) before `configure`; `parseConfiguration` then validates it
 * with `settingsSchema` (the value rules, plus what a schema cannot say: cron patterns, timezones,
 * unique ids and names), with errors naming the job and the field in the form's words, and gives
 * every job an id.
 */
import { randomUUID } from 'node:crypto'

import { BackupError } from '../errors.js'
import type { JobSpec } from '../lifecycle/job.js'
import { assertValidSchedule } from './schedule.js'
import { jobSchema, RETIRED_SETTINGS, settingsSchema } from './schema.js'
import type { Configuration, ConfiguredJob } from './schema.js'
import { compileValidator } from './validation.js'

export type { Configuration, ConfiguredJob }

/** a configured job once the plugin has given it an id */
export type Job = ConfiguredJob & { readonly id: string }

export interface Settings {
  readonly defaultRetention: number
  readonly concurrency: number
  readonly useVhdDirectory: boolean
  /** a disk transfer that receives no data for this long fails */
  readonly transferTimeoutSeconds: number
}

export interface ParsedConfiguration {
  readonly settings: Settings
  readonly jobs: readonly Job[]
  /** the configuration to store: the input with its defaults filled in and every job id set */
  readonly configuration: Configuration
  /** whether the configuration must be written back (ids given to new jobs, retired settings dropped) */
  readonly idsAssigned: boolean
}

const validateConfiguration = compileValidator<Configuration>(settingsSchema, { words: true })
const validateJob = compileValidator<ConfiguredJob>(jobSchema)

/** how the form names a job: `job 2 "Nightly"` */
export function jobLabel(job: { readonly name?: unknown }, index: number): string {
  return typeof job.name === 'string' && job.name !== '' ? `job ${index + 1} "${job.name}"` : `job ${index + 1}`
}

/** checks what the schema cannot: the schedule reads as XO's scheduler will read it; a health check has its SR */
export function checkJob(job: ConfiguredJob, label = 'job', words = false): ConfiguredJob {
  if (job.healthCheckEvery !== undefined && job.healthCheckSr === undefined) {
    throw new BackupError(
      'INVALID_PARAMETER',
      words
        ? `${label}, Health check SR: choose the SR the health checks restore to (Health check every N runs is set)`
        : `${label}.healthCheckSr: needed with healthCheckEvery (the SR the health checks restore to)`
    )
  }
  if (job.schedule !== undefined) {
    assertValidSchedule(
      job.schedule,
      words ? { cron: `${label}, Schedule › Cron pattern`, timezone: `${label}, Schedule › Timezone` } : `${label}.schedule`
    )
  }
  return job
}

/** a job validated on its own (schema defaults filled in) */
export function parseJob(value: unknown, label = 'job'): ConfiguredJob {
  return checkJob(validateJob(value, label), label)
}

function assertUnique(jobs: readonly ConfiguredJob[]): void {
  const ids = new Map<string, number>()
  const names = new Map<string, number>()
  jobs.forEach((job, index) => {
    if (job.id !== undefined) {
      const previous = ids.get(job.id)
      if (previous !== undefined) {
        throw new BackupError('INVALID_PARAMETER', `${jobLabel(job, index)}, Identifier: "${job.id}" is already the identifier of ${jobLabel(jobs[previous]!, previous)}`)
      }
      ids.set(job.id, index)
    }
    const key = job.name.trim().toLowerCase()
    const previous = names.get(key)
    if (previous !== undefined) {
      throw new BackupError('INVALID_PARAMETER', `${jobLabel(job, index)}, Name: "${job.name}" is already the name of job ${previous + 1}`)
    }
    names.set(key, index)
  })
}

/** the input without the settings earlier versions offered (accepted, ignored, dropped on write-back) */
function withoutRetired(input: unknown): { readonly value: unknown; readonly dropped: boolean } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { value: input, dropped: false }
  const value: Record<string, unknown> = { ...input }
  let dropped = false
  for (const key of RETIRED_SETTINGS) {
    if (key in value) {
      delete value[key]
      dropped = true
    }
  }
  return { value, dropped }
}

export function parseConfiguration(input: unknown, newId: (job: ConfiguredJob) => string = () => randomUUID()): ParsedConfiguration {
  const { value, dropped } = withoutRetired(input ?? {})
  const configuration = validateConfiguration(value, 'the settings')
  configuration.jobs.forEach((job, index) => checkJob(job, jobLabel(job, index), true))
  assertUnique(configuration.jobs)

  let idsAssigned = dropped
  const jobs: Job[] = configuration.jobs.map(job => {
    if (job.id !== undefined) return { ...job, id: job.id }
    idsAssigned = true
    return { ...job, id: newId(job) }
  })
  const { defaultRetention, concurrency, useVhdDirectory, transferTimeoutSeconds } = configuration
  return {
    settings: { defaultRetention, concurrency, useVhdDirectory, transferTimeoutSeconds },
    jobs,
    configuration: { ...configuration, jobs },
    idsAssigned,
  }
}

/**
 * Refuses a configuration that changes the identifier of a job in force (XO's form lets a user
 * edit it): the job's restore points and reference snapshots are filed under it, so a new one
 * would silently start a new full chain and orphan the old one. A job with an identifier nobody
 * gave it is such a change; `expected` are the ids the plugin itself is writing now.
 */
export function assertIdentitiesKept(previous: readonly Job[], next: readonly Job[], input: unknown, expected: ReadonlySet<string>): void {
  const known = new Set(previous.map(job => job.id))
  const given: unknown[] = typeof input === 'object' && input !== null && Array.isArray(Reflect.get(input, 'jobs')) ? (Reflect.get(input, 'jobs') as unknown[]) : []
  next.forEach((job, index) => {
    const typed: unknown = given[index]
    const hadId = typeof typed === 'object' && typed !== null && typeof Reflect.get(typed, 'id') === 'string'
    if (!hadId || known.has(job.id) || expected.has(job.id)) return
    const nextIds = new Set(next.map(other => other.id))
    const lost = previous.filter(other => !nextIds.has(other.id))
    const before = lost.find(other => other.name.trim().toLowerCase() === job.name.trim().toLowerCase()) ?? (lost.length === 1 ? lost[0] : undefined)
    throw new BackupError(
      'INVALID_PARAMETER',
      `${jobLabel(job, index)}, Identifier: a job's identifier cannot be changed` +
        (before === undefined ? ` ("${job.id}" is not the identifier of any job)` : ` (it is "${before.id}", not "${job.id}")`) +
        ': its restore points and reference snapshot are filed under it. Put the identifier back' +
        ' as it was, or, for a new job, leave the Identifier empty: the plugin fills it in.',
      { job: before?.id ?? job.id }
    )
  })
}

/** XO's default: 10 minutes from the copy's start to its guest tools */
export const DEFAULT_HEALTH_CHECK_TIMEOUT_SECONDS = 600

/** the job's health checks, when it has them */
export function healthCheckOf(job: Job): { readonly every: number; readonly sr: string; readonly timeoutMs: number } | undefined {
  if (job.healthCheckEvery === undefined || job.healthCheckSr === undefined) return undefined
  return { every: job.healthCheckEvery, sr: job.healthCheckSr, timeoutMs: (job.healthCheckTimeout ?? DEFAULT_HEALTH_CHECK_TIMEOUT_SECONDS) * 1000 }
}

/** what the lifecycle runs for a configured job */
export function toJobSpec(job: Job, settings: Settings, scheduleId?: string): JobSpec {
  return {
    id: job.id,
    name: job.name,
    vms: [...job.vms],
    remoteId: job.remote,
    retention: job.retention ?? settings.defaultRetention,
    concurrency: settings.concurrency,
    ...(scheduleId === undefined ? {} : { scheduleId }),
    ...(job.transport === undefined ? {} : { transport: job.transport }),
    ...(job.nbdConnections === undefined ? {} : { nbdConnections: job.nbdConnections }),
  }
}
