/**
 * Jobs and their executors (`xo-mixins/jobs/index.mjs`): `registerJobExecutor(type, fn)` (once
 * per type), jobs stored in `<datadir>/jobs.json`, and `runJobSequence(ids, schedule, data)`
 * which runs each job through its type's executor, logs the run (visible in
 * `backupNg.getLogs`) and emits `job:terminated`.
 *
 * As xo-server's redis collection (`JobsDb`): each property is stored as a string (JSON for
 * non-strings) and read back through `JSON.parse` when it parses, so a job comes back as
 * xo-server gives it (a name `"42"` reads as the number 42; `userId` always a string). A job
 * keeps the `userId` it was created with (`xo.createJob` adds none; the `job.create` API method
 * adds the caller's); its run's connection is signed in as that user. While a job runs, its
 * stored record carries the run's id (`runId`); a run the process did not see end (the host
 * stopped meanwhile) is reported at the next start (`plugins:registered`) with `job:terminated`,
 * and the `runId` removed, as xo-server does for interrupted backups.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { noSuchObject } from './api-errors.js'
import { serializeError } from './serialize-error.js'
import { createCancelSource } from './cancel-token.js'
import type { CancelToken } from './cancel-token.js'
import type { Connection } from './connection.js'
import { JsonFile } from './json-file.js'
import type { Logger } from './logs.js'
import type { TaskLog } from './tasks.js'

export interface Job {
  readonly id: string
  readonly type: string
  readonly name?: string
  readonly userId?: string
  readonly key?: string
  /** the id of the current run while the job runs */
  readonly runId?: string
  readonly [property: string]: unknown
}

/** a job to create: its id is generated unless given */
export interface NewJob {
  readonly id?: string
  readonly type: string
  readonly name?: string
  readonly userId?: string
  readonly key?: string
  readonly [property: string]: unknown
}

export interface Schedule {
  readonly id: string
  readonly cron: string
  readonly enabled: boolean
  readonly jobId: string
  readonly name?: string
  readonly timezone?: string
  readonly userId?: string
}

/** properties to attach to the run's root task (`properties: { name, ...jobData }`) */
export interface JobData {
  readonly jobId: string
  readonly jobName: string | undefined
  readonly runJobId: string
  readonly scheduleId: string | undefined
  readonly type: string
  readonly userId: string | undefined
}

export interface ExecutorParams<App> {
  readonly app: App
  readonly cancelToken: CancelToken
  readonly connection: Connection
  readonly data: unknown
  readonly job: Job
  readonly jobData: JobData
  /** links an `xo.tasks` task (by id) to this run: its log appears under the run in `backupNg.getLogs` */
  readonly jobUpdateFct: (taskId: string) => Promise<void>
  readonly logger: Logger
  readonly runJobId: string
  readonly schedule: Schedule | undefined
}

export type JobExecutor<App> = (params: ExecutorParams<App>) => unknown

export interface RunLog {
  readonly id: string
  readonly jobId: string
  readonly jobName: string | undefined
  readonly scheduleId: string | undefined
  readonly type: string
  readonly userId: string | undefined
  readonly message: 'job'
  readonly start: number
  end?: number
  status: 'pending' | 'success' | 'failure'
  result?: unknown
  /** ids of the `xo.tasks` tasks linked by `jobUpdateFct` */
  readonly taskIds: string[]
}

export interface JobsHost<App> {
  readonly app: App
  readonly logger: Logger
  createConnection(userId: string | undefined): Connection
  getTaskLog(id: string): TaskLog | undefined
  deleteSchedulesOf(jobId: string): Promise<void>
  emit(event: 'job:terminated', runJobId: string, info: { status?: unknown; type: string }): void
}

/** a job as xo-server's redis collection stores it: every property a string */
function serialize(job: Record<string, unknown>): Record<string, string> {
  const stored: Record<string, string> = {}
  for (const [key, value] of Object.entries(job)) {
    if (value !== undefined) stored[key] = typeof value === 'string' ? value : JSON.stringify(value)
  }
  return stored
}

/** a job as xo-server reads it back: each property JSON-parsed when it parses; `userId` a string */
function normalize(stored: Readonly<Record<string, unknown>>): Job {
  const job: Record<string, unknown> = {}
  for (const [key, raw] of Object.entries(stored)) {
    let value = raw
    if (typeof raw === 'string') {
      try {
        value = JSON.parse(raw) as unknown
      } catch {
        value = raw
      }
    }
    job[key] = key === 'userId' && typeof value === 'number' ? String(value) : value
  }
  return job as Job
}

function toJson(value: unknown): unknown {
  if (value === undefined) return undefined
  try {
    return JSON.parse(JSON.stringify(value)) as unknown
  } catch {
    return String(value)
  }
}

export class Jobs<App> {
  readonly #executors = new Map<string, JobExecutor<App>>()
  readonly #file: JsonFile<Job[]>
  #jobs: Map<string, Job> | undefined
  readonly #running = new Map<string, string>()
  readonly #runs = new Map<string, RunLog>()
  readonly #cancels = new Map<string, () => void>()
  readonly #host: JobsHost<App>

  constructor(dataDir: string, host: JobsHost<App>) {
    this.#file = new JsonFile(join(dataDir, 'jobs.json'))
    this.#host = host
  }

  registerJobExecutor(type: string, executor: JobExecutor<App>): void {
    if (this.#executors.has(type)) throw new Error(`there is already a job executor for type ${type}`)
    this.#executors.set(type, executor)
  }

  async createJob(job: NewJob): Promise<Job> {
    const created = normalize(serialize({ ...structuredClone(job), id: job.id ?? randomUUID() }))
    const jobs = await this.#all()
    if (jobs.has(created.id)) throw new Error(`job ${created.id} already exists`)
    jobs.set(created.id, created)
    await this.#save()
    return structuredClone(created)
  }

  /** merges `props` into the job (or replaces it when `merge` is false) */
  async updateJob({ id, ...props }: Partial<Job> & { id: string }, merge = true): Promise<void> {
    const jobs = await this.#all()
    const existing = jobs.get(id)
    if (existing === undefined) throw noSuchObject(id, 'job')
    const next: Record<string, unknown> = merge ? { ...existing } : { id, type: existing.type }
    for (const [key, value] of Object.entries(structuredClone(props))) {
      if (value === null || value === undefined) delete next[key]
      else next[key] = value
    }
    jobs.set(id, normalize(serialize(next)))
    await this.#save()
  }

  /** reports the runs the host did not see end (it stopped meanwhile), as xo-server at start */
  async reportInterruptedRuns(): Promise<void> {
    for (const job of [...(await this.#all()).values()]) {
      if (job.runId === undefined || this.#running.get(job.id) !== undefined) continue
      this.#host.emit('job:terminated', String(job.runId), { type: job.type })
      await this.updateJob({ id: job.id, runId: null } as unknown as Job)
    }
  }

  async getJob(id: string, type?: string): Promise<Job> {
    const job = (await this.#all()).get(id)
    if (job === undefined || (type !== undefined && job.type !== type)) throw noSuchObject(id, 'job')
    return this.#withRunId(job)
  }

  async getAllJobs(type?: string): Promise<Job[]> {
    return [...(await this.#all()).values()].filter(job => type === undefined || job.type === type).map(job => this.#withRunId(job))
  }

  async removeJob(id: string): Promise<void> {
    const jobs = await this.#all()
    if (!jobs.delete(id)) throw noSuchObject(id, 'job')
    await this.#save()
    await this.#host.deleteSchedulesOf(id)
  }

  /** runs the jobs one after the other; rejects with the first failure */
  async runJobSequence(ids: readonly string[], schedule?: Schedule, data?: unknown): Promise<void> {
    const jobs = await Promise.all(ids.map(id => this.getJob(id)))
    for (const job of jobs) await this.#runJob(job, schedule, data)
  }

  cancelJobRun(runJobId: string): void {
    this.#cancels.get(runJobId)?.()
  }

  /** run logs with their linked task logs, keyed by run id (`backupNg.getLogs`) */
  getRunLogs(): Record<string, RunLog & { tasks?: TaskLog[] }> {
    const result: Record<string, RunLog & { tasks?: TaskLog[] }> = {}
    for (const run of this.#runs.values()) {
      const tasks = run.taskIds.map(id => this.#host.getTaskLog(id)).filter((log): log is TaskLog => log !== undefined)
      result[run.id] = { ...structuredClone(run), ...(tasks.length === 0 ? {} : { tasks }) }
    }
    return result
  }

  /** job id → id of its run in progress */
  get runningJobs(): ReadonlyMap<string, string> {
    return this.#running
  }

  /** cancels running jobs and waits for pending writes */
  async close(): Promise<void> {
    for (const cancel of this.#cancels.values()) cancel()
    await this.#file.flush()
  }

  async #runJob(job: Job, schedule: Schedule | undefined, data: unknown): Promise<void> {
    const { logger } = this.#host
    const { id, type } = job
    const runJobId = logger.notice(`Starting execution of ${id}.`, {
      event: 'job.start',
      userId: job.userId,
      jobId: id,
      jobName: job.name,
      scheduleId: schedule?.id,
      key: job.key,
      type,
    })
    const run: RunLog = {
      id: runJobId,
      jobId: id,
      jobName: job.name,
      scheduleId: schedule?.id,
      type,
      userId: job.userId,
      message: 'job',
      start: Date.now(),
      status: 'pending',
      taskIds: [],
    }
    this.#runs.set(runJobId, run)
    const { token, cancel } = createCancelSource()
    let connection: Connection | undefined
    try {
      const executor = this.#executors.get(type)
      if (executor === undefined) throw new Error(`cannot run job (${id}): no executor for type ${type}`)
      if (this.#running.has(id)) throw new Error(`the job (${id}) is already running`)
      this.#running.set(id, runJobId)
      // as xo-server: the run's id stays in the stored job while it runs (reported if the host stops)
      await this.updateJob({ id, runId: runJobId }).catch(() => {})
      this.#cancels.set(runJobId, cancel)
      connection = this.#host.createConnection(job.userId)
      const result = await executor({
        app: this.#host.app,
        cancelToken: token,
        connection,
        data,
        job: this.#withRunId(job),
        jobData: { jobId: id, jobName: job.name, runJobId, scheduleId: schedule?.id, type, userId: job.userId },
        jobUpdateFct: async taskId => {
          if (!run.taskIds.includes(taskId)) run.taskIds.push(taskId)
          // as xo-server: the entry that links the task as the run's tree in the backup logs
          logger.notice(`Backup task started for ${id}.`, { event: 'job.backupTaskStart', runJobId, backupTaskId: taskId })
        },
        logger,
        runJobId,
        schedule,
      })
      run.end = Date.now()
      run.status = 'success'
      run.result = toJson(result)
      logger.notice(`Execution terminated for ${id}.`, { event: 'job.end', runJobId })
      this.#host.emit('job:terminated', runJobId, { status: result, type })
    } catch (error) {
      run.end = Date.now()
      run.status = 'failure'
      run.result = serializeError(error)
      logger.error(`The execution of ${id} has failed.`, { event: 'job.end', runJobId, error: serializeError(error) })
      this.#host.emit('job:terminated', runJobId, { type })
      throw error
    } finally {
      if (this.#running.get(id) === runJobId) {
        this.#running.delete(id)
        await this.updateJob({ id, runId: null } as unknown as Job).catch(() => {})
      }
      this.#cancels.delete(runJobId)
      connection?.close()
    }
  }

  /** the job with the id of its run in progress, if any (xo-server sets `runId` from its running jobs) */
  #withRunId(job: Job): Job {
    const runId = this.#running.get(job.id)
    const { runId: _stored, ...rest } = structuredClone(job)
    return { ...rest, ...(runId === undefined ? {} : { runId }) } as Job
  }

  async #all(): Promise<Map<string, Job>> {
    if (this.#jobs === undefined) {
      const list = await this.#file.read([])
      this.#jobs ??= new Map(list.map(stored => normalize(stored)).map(job => [job.id, job]))
    }
    return this.#jobs
  }

  async #save(): Promise<void> {
    await this.#file.write([...(await this.#all()).values()].map(job => serialize(job)) as unknown as Job[])
  }
}
