/**
 * The plugin configuration: the single source of truth for jobs. xo-server validates it with
 * `configurationSchema` before `configure`; `parseConfiguration` validates it again (the same
 * schema, plus what a schema cannot say: cron patterns, timezones, unique ids and names) and
 * gives every job an id.
 */
import { randomUUID } from 'node:crypto'

import { BackupError } from '../errors.js'
import type { JobSpec } from '../lifecycle/job.js'
import { assertValidSchedule } from './schedule.js'
import { configurationSchema, jobSchema } from './schema.js'
import type { Configuration, ConfiguredJob } from './schema.js'
import { compileValidator } from './validation.js'

export type { Configuration, ConfiguredJob }

/** a configured job once the plugin has given it an id */
export type Job = ConfiguredJob & { readonly id: string }

export interface Settings {
  readonly defaultRetention: number
  readonly concurrency: number
  readonly mergeBlockConcurrency: number
  readonly useVhdDirectory: boolean
}

export interface ParsedConfiguration {
  readonly settings: Settings
  readonly jobs: readonly Job[]
  /** the configuration to store: the input with its defaults filled in and every job id set */
  readonly configuration: Configuration
  /** whether some jobs got their id now (the configuration must be written back) */
  readonly idsAssigned: boolean
}

const validateConfiguration = compileValidator<Configuration>(configurationSchema)
const validateJob = compileValidator<ConfiguredJob>(jobSchema)

/** checks what the schema cannot: the schedule reads as XO's scheduler will read it */
export function checkJob(job: ConfiguredJob, label = 'job'): ConfiguredJob {
  if (job.schedule !== undefined) assertValidSchedule(job.schedule, `${label}.schedule`)
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
        throw new BackupError('INVALID_PARAMETER', `jobs[${index}].id: "${job.id}" is already the id of jobs[${previous}]`)
      }
      ids.set(job.id, index)
    }
    const key = job.name.trim().toLowerCase()
    const previous = names.get(key)
    if (previous !== undefined) {
      throw new BackupError('INVALID_PARAMETER', `jobs[${index}].name: "${job.name}" is already the name of jobs[${previous}]`)
    }
    names.set(key, index)
  })
}

export function parseConfiguration(input: unknown, newId: (job: ConfiguredJob) => string = () => randomUUID()): ParsedConfiguration {
  const configuration = validateConfiguration(input ?? {}, 'configuration')
  configuration.jobs.forEach((job, index) => checkJob(job, `jobs[${index}]`))
  assertUnique(configuration.jobs)

  let idsAssigned = false
  const jobs: Job[] = configuration.jobs.map(job => {
    if (job.id !== undefined) return { ...job, id: job.id }
    idsAssigned = true
    return { ...job, id: newId(job) }
  })
  const { defaultRetention, concurrency, mergeBlockConcurrency, useVhdDirectory } = configuration
  return {
    settings: { defaultRetention, concurrency, mergeBlockConcurrency, useVhdDirectory },
    jobs,
    configuration: { ...configuration, jobs },
    idsAssigned,
  }
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
  }
}
