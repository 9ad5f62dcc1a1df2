/**
 * Jobs as the API edits them. The plugin configuration holds them: every change builds a new
 * configuration, checks all of it, then writes it through xo-server (`xo.configurePlugin`),
 * which stores it and hands it back to `configure`. Nothing is written when a check fails, and
 * changes are applied one at a time.
 */
import { randomUUID } from 'node:crypto'

import { BackupError } from '../errors.js'
import { parseConfiguration, parseJob } from './configuration.js'
import type { Configuration, ConfiguredJob, Job, ParsedConfiguration } from './configuration.js'
import { assertRemoteUsable, assertSrKnown, assertVmsKnown } from './references.js'
import type { ReferenceHost } from './references.js'
import type { CreateJobParams, EditJobParams } from './schema.js'

export interface JobStoreHost {
  /** the configuration in force */
  current(): ParsedConfiguration
  /** stores a configuration; it is in force once this resolves */
  write(configuration: Configuration): Promise<void>
  readonly references: ReferenceHost
}

export class JobStore {
  readonly #host: JobStoreHost
  readonly #newId: () => string
  #queue: Promise<unknown> = Promise.resolve()

  constructor(host: JobStoreHost, newId: () => string = () => randomUUID()) {
    this.#host = host
    this.#newId = newId
  }

  list(): readonly Job[] {
    return this.#host.current().jobs
  }

  get(id: string): Job {
    const job = this.list().find(job => job.id === id)
    if (job === undefined) throw new BackupError('JOB_NOT_FOUND', `no job with id ${id}`, { job: id })
    return job
  }

  /** validates everything, then writes the job; resolves with its id */
  create(params: CreateJobParams): Promise<string> {
    return this.#serialize(async () => {
      const id = this.#newId()
      const job = parseJob({ ...params, id }, 'job')
      await this.#checkReferences({ vms: job.vms, remote: job.remote, sr: job.healthCheckSr })
      await this.#writeJobs([...this.#host.current().configuration.jobs, job])
      return id
    })
  }

  /** changes the given fields of a job; resolves with the job as saved */
  edit({ id, ...changes }: EditJobParams): Promise<Job> {
    return this.#serialize(async () => {
      const previous = this.get(id)
      const job = parseJob({ ...previous, ...changes, id }, 'job')
      await this.#checkReferences({
        vms: changes.vms === undefined ? [] : job.vms,
        remote: changes.remote === undefined ? undefined : job.remote,
        sr: changes.healthCheckSr === undefined ? undefined : job.healthCheckSr,
      })
      await this.#writeJobs(this.#host.current().configuration.jobs.map(other => (other.id === id ? job : other)))
      return this.get(id)
    })
  }

  delete(id: string): Promise<void> {
    return this.#serialize(async () => {
      this.get(id)
      await this.#writeJobs(this.#host.current().configuration.jobs.filter(job => job.id !== id))
    })
  }

  async #checkReferences({ vms, remote, sr }: { readonly vms: readonly string[]; readonly remote?: string | undefined; readonly sr?: string | undefined }): Promise<void> {
    const { references } = this.#host
    assertVmsKnown(references, vms)
    if (remote !== undefined) await assertRemoteUsable(references, remote)
    if (sr !== undefined) assertSrKnown(references, sr)
  }

  async #writeJobs(jobs: readonly ConfiguredJob[]): Promise<void> {
    // the whole configuration is checked (unique names...) before anything is written
    const { configuration } = parseConfiguration({ ...this.#host.current().configuration, jobs }, this.#newId)
    await this.#host.write(configuration)
  }

  #serialize<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(fn)
    this.#queue = result.catch(() => undefined)
    return result
  }
}
