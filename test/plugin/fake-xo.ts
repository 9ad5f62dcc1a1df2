/**
 * Narrow doubles of xo-server's app for the plugin's unit tests: XO's jobs and schedules in
 * memory, and an app that drives the plugin the way xo-server does (configurePlugin calls
 * configure, runJobSequence calls the registered executor).
 */
import type { XoJobsHost } from '../../src/plugin/xo-jobs.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import type { XapiClient } from '../../src/xapi/client.js'
import type { XoApiMethod, XoApp, XoJob, XoJobExecutor, XoObject, XoRemote, XoSchedule } from '../../src/plugin/xo.js'
import { fakeTasks } from './fake-tasks.js'

/** a job as xo-server's collection reads it back: each string property through JSON.parse when it parses */
function asStored<T extends Record<string, unknown>>(job: T): T {
  const read: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(job)) {
    try {
      read[key] = typeof value === 'string' ? (JSON.parse(value) as unknown) : value
    } catch {
      read[key] = value
    }
  }
  return read as T
}

/** XO's jobs and schedules collections, in memory */
export class FakeScheduling implements XoJobsHost {
  readonly jobs = new Map<string, XoJob>()
  readonly schedules = new Map<string, XoSchedule>()
  #next = 0

  async createJob(job: { type: string; name: string; key?: string; continuousDeltaJobId?: string }): Promise<XoJob> {
    const created = asStored({ ...job, id: `xo-job-${++this.#next}` })
    this.jobs.set(created.id, created)
    return created
  }
  async updateJob({ id, name }: { id: string; name: string }): Promise<void> {
    const job = this.jobs.get(id)
    if (job === undefined) throw new Error(`no job ${id}`)
    this.jobs.set(id, asStored({ ...job, name }))
  }
  async getAllJobs(type?: string): Promise<XoJob[]> {
    return [...this.jobs.values()].filter(job => type === undefined || job.type === type)
  }
  async removeJob(id: string): Promise<void> {
    this.jobs.delete(id)
    for (const schedule of this.schedules.values()) if (schedule.jobId === id) this.schedules.delete(schedule.id)
  }
  async createSchedule(schedule: { cron: string; timezone?: string; enabled: boolean; jobId: string; name: string }): Promise<XoSchedule> {
    const created = { ...schedule, id: `schedule-${++this.#next}` }
    this.schedules.set(created.id, created)
    return created
  }
  async getAllSchedules(): Promise<XoSchedule[]> {
    return [...this.schedules.values()]
  }
  async deleteSchedule(id: string): Promise<void> {
    this.schedules.delete(id)
  }
}


/** the rest of the app the plugin uses; VMs and remotes are plain sets */
export class FakeXo extends FakeScheduling implements XoApp {
  readonly methods = new Map<string, XoApiMethod>()
  readonly executors = new Map<string, XoJobExecutor>()
  readonly vms = new Set<string>()
  readonly remotes = new Map<string, XoRemote>()
  readonly tasks = fakeTasks
  /** what xo-server stored with configurePlugin */
  stored: unknown
  plugin: { configure(configuration: unknown): Promise<void> } | undefined

  addApiMethods(methods: { readonly [namespace: string]: { readonly [name: string]: XoApiMethod } }): () => void {
    const names: string[] = []
    for (const [namespace, group] of Object.entries(methods)) {
      for (const [name, method] of Object.entries(group)) {
        const full = `${namespace}.${name}`
        if (this.methods.has(full)) throw new Error(`API method ${full} already exists`)
        this.methods.set(full, method)
        names.push(full)
      }
    }
    return () => {
      for (const name of names) this.methods.delete(name)
    }
  }

  async call(name: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const method = this.methods.get(name)
    if (method === undefined) throw new Error(`no API method ${name}`)
    return method(params)
  }

  async configurePlugin(_id: string, configuration: unknown): Promise<void> {
    await this.plugin?.configure(structuredClone(configuration))
    this.stored = structuredClone(configuration)
  }

  registerJobExecutor(type: string, executor: XoJobExecutor): void {
    if (this.executors.has(type)) throw new Error(`there is already a job executor for type ${type}`)
    this.executors.set(type, executor)
  }

  async runJobSequence(ids: string[], schedule?: XoSchedule, data?: unknown): Promise<void> {
    for (const id of ids) {
      const job = this.jobs.get(id)
      if (job === undefined) throw new Error(`no job ${id}`)
      const executor = this.executors.get(job.type)
      if (executor === undefined) throw new Error(`no executor for ${job.type}`)
      await executor({ job, ...(schedule === undefined ? {} : { schedule }), data })
    }
  }

  getObject(id: string, type?: string): XoObject {
    if (!this.vms.has(id) || (type !== undefined && type !== 'VM')) throw new Error(`no such object ${id}`)
    return { id, type: 'VM' }
  }

  getXapi(id: string): XapiClient {
    throw new Error(`no pool in this double (${id})`)
  }

  async getRemote(id: string): Promise<XoRemote> {
    const remote = this.remotes.get(id)
    if (remote === undefined) throw new Error(`no such remote ${id}`)
    return remote
  }

  async getRemoteHandler(id: string): Promise<RemoteHandler> {
    throw new Error(`no remote handler in this double (${id})`)
  }
}
