/**
 * The `xo` app object a plugin receives (the part of xo-server 5.207's `Xo` that plugins use):
 * API methods, XAPI pools and objects, remotes, jobs and schedules, tasks, stores, loggers,
 * events and plugin configuration. Every member is documented in README.md.
 */
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { ApiRegistry } from './api.js'
import type { ApiCallEvent, ApiContext, ApiMethod, ApiMethods } from './api.js'
import { XoApiError } from './api-errors.js'
import { Connection } from './connection.js'
import { consolidateBackupLogs } from './backup-logs.js'
import type { BackupLog } from './backup-logs.js'
import { Jobs } from './jobs.js'
import type { Job, JobExecutor, NewJob, RunLog, Schedule } from './jobs.js'
import { Logs } from './logs.js'
import type { Logger } from './logs.js'
import { Plugins } from './plugins.js'
import type { PluginInfo } from './plugins.js'
import { BackupsListing } from './backups-listing.js'
import type { ListedBackup } from './backups-listing.js'
import { Remotes } from './remotes.js'
import type { Remote, RemotePatch } from './remotes.js'
import { Schedules } from './schedules.js'
import type { SchedulePatch, ScheduleProps } from './schedules.js'
import { Stores } from './store.js'
import type { KeyValueStore } from './store.js'
import { Tasks } from './tasks.js'
import type { TaskLog } from './tasks.js'
import { Users } from './users.js'
import type { User } from './users.js'
import type { FsHandler, XenApiClient } from './vendor.js'
import { Xapis } from './xapis.js'
import type { ObjectFilter, XapiClientOptions, XenServer, XenServerSpec } from './xapis.js'
import type { XapiRecord } from '../../src/xapi/client.js'
import type { XoObject } from './xo-objects.js'

export interface XoAppOptions {
  /** persistent state: plugin metadata, remotes, jobs, schedules, stores, logs, plugin data dirs */
  readonly dataDir: string
  /** `[plugins.<id>]` sections of the static configuration */
  readonly pluginsConfig?: Record<string, Record<string, unknown>>
  /** options of the `xen-api` clients connecting to pools */
  readonly xapiOptions?: XapiClientOptions
}

export type XoEvent = 'xo:preCall' | 'xo:postCall' | 'job:terminated' | 'plugins:registered' | 'stop'

export class XoApp extends EventEmitter {
  readonly dataDir: string
  /** `xo.tasks`: create root tasks, read their logs */
  readonly tasks = new Tasks()
  readonly users = new Users()

  readonly #api: ApiRegistry
  readonly #xapis: Xapis
  readonly #remotes: Remotes
  readonly #backupsListing: BackupsListing
  readonly #jobs: Jobs<XoApp>
  readonly #schedules: Schedules
  readonly #stores: Stores
  readonly #logs: Logs
  readonly #plugins: Plugins<XoApp>
  readonly #connections = new Set<Connection>()
  #interruptedRunsReported: Promise<void> = Promise.resolve()

  constructor({ dataDir, pluginsConfig, xapiOptions }: XoAppOptions) {
    super()
    this.dataDir = dataDir
    this.#xapis = new Xapis(xapiOptions)
    this.#logs = new Logs(join(dataDir, 'logs.ndjson'))
    this.#stores = new Stores(dataDir)
    this.#remotes = new Remotes(dataDir)
    this.#backupsListing = new BackupsListing(id => this.#remotes.getRemoteHandler(id))
    this.#api = new ApiRegistry({
      thisArg: this,
      getUser: id => this.users.get(id),
      getObject: (id, types) => this.#xapis.getObject(id, types),
      emit: (event: string, data: ApiCallEvent) => this.emit(event, data),
    })
    this.#jobs = new Jobs<XoApp>(dataDir, {
      app: this,
      logger: this.#logs.getLogger('jobs'),
      createConnection: userId => {
        const connection = this.createApiConnection('internal')
        if (userId !== undefined) connection.set('user_id', userId)
        return connection
      },
      getTaskLog: id => {
        try {
          return this.tasks.get(id)
        } catch {
          return undefined
        }
      },
      deleteSchedulesOf: async jobId => {
        for (const schedule of await this.#schedules.getAllSchedules()) {
          if (schedule.jobId === jobId) await this.#schedules.deleteSchedule(schedule.id)
        }
      },
      emit: (event, runJobId, info) => this.emit(event, runJobId, info),
    })
    // as xo-server: the runs a stop interrupted are reported once the plugins are registered
    this.on('plugins:registered', () => {
      this.#interruptedRunsReported = this.#jobs.reportInterruptedRuns().catch(() => {})
    })
    this.#schedules = new Schedules(dataDir, schedule => this.runJobSequence([schedule.jobId], schedule))
    this.#plugins = new Plugins<XoApp>({ xo: this, dataDir, staticConfig: pluginsConfig })
  }

  /** starts the schedules stored in the data dir (once the interrupted runs are reported) */
  async start(): Promise<void> {
    await this.#interruptedRunsReported
    await this.#schedules.start()
  }

  // ------------------------------------------------------------------------- API

  addApiMethod(name: string, method: ApiMethod): () => void {
    return this.#api.addApiMethod(name, method)
  }

  addApiMethods(methods: ApiMethods): () => void {
    return this.#api.addApiMethods(methods)
  }

  /** names of the registered API methods */
  get apiMethodNames(): string[] {
    return this.#api.names()
  }

  get apiMethodsInfo(): ReturnType<ApiRegistry['info']> {
    return this.#api.info()
  }

  /** the user and connection of the API call being served, if any */
  get apiContext(): ApiContext | undefined {
    return this.#api.context
  }

  callApiMethod(connection: Connection, name: string, params?: unknown): Promise<unknown> {
    return this.#api.call(connection, name, params)
  }

  createApiConnection(remoteAddress?: string): Connection {
    const connection = new Connection()
    connection.set('user_ip', remoteAddress)
    this.#connections.add(connection)
    connection.once('close', () => this.#connections.delete(connection))
    return connection
  }

  getUser(id: string): User {
    return this.users.get(id)
  }

  /**
   * As xo-server's `defineProperty(name, value, thisArg)`: installs a property on `xo` (a function
   * bound to `thisArg`) and returns the function that removes it again (restoring a previous one).
   * Transport plugins install `sendEmail`, `sendToXmppClient`, `sendSlackMessage` and
   * `sendIcinga2Status` this way at load and remove them at unload.
   */
  defineProperty(name: string, value: unknown, thisArg: unknown = null): () => void {
    const bound = thisArg !== null && typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(thisArg) : value
    const previous = Object.getOwnPropertyDescriptor(this, name)
    Object.defineProperty(this, name, { configurable: true, value: bound })
    return () => {
      if (previous === undefined) Reflect.deleteProperty(this, name)
      else Object.defineProperty(this, name, previous)
    }
  }

  registerHttpRequest(): never {
    throw new XoApiError(0, 'not implemented: registerHttpRequest is not offered by the host double')
  }

  // ------------------------------------------------------------------------- XAPI

  getXapi(objectOrId: string | { readonly id?: string; readonly $poolId?: string; readonly $pool?: string; readonly uuid?: string }): XenApiClient {
    return this.#xapis.getXapi(objectOrId)
  }

  getXapiObject(idOrObject: string | { readonly id: string }, type?: string | readonly string[]): XapiRecord {
    return this.#xapis.getXapiObject(idOrObject, type)
  }

  getObject(id: string, type?: string | readonly string[]): XoObject {
    return this.#xapis.getObject(id, type)
  }

  getObjects(opts?: { filter?: ObjectFilter; limit?: number }): Record<string, XoObject> {
    return this.#xapis.getObjects(opts)
  }

  getAllXapis(): Record<string, XenApiClient> {
    return this.#xapis.getAllXapis()
  }

  /** registers a pool and connects it: resolves with the server id once connected */
  registerXenServer(spec: XenServerSpec): Promise<string> {
    return this.#xapis.addServer(spec)
  }

  /** registers a pool and starts connecting in the background (`server.add`); returns the server id */
  addXenServer(spec: XenServerSpec, { connect = true }: { connect?: boolean } = {}): string {
    const id = this.#xapis.registerServer(spec)
    if (connect) {
      this.#xapis.connectServer(id).catch(() => {
        // the failure is shown by getAllXenServers() (`status`, `error`)
      })
    }
    return id
  }

  getAllXenServers(): XenServer[] {
    return this.#xapis.getServers()
  }

  connectXenServer(id: string): Promise<void> {
    return this.#xapis.connectServer(id)
  }

  disconnectXenServer(id: string): Promise<void> {
    return this.#xapis.disconnectServer(id)
  }

  unregisterXenServer(id: string): Promise<void> {
    return this.#xapis.removeServer(id)
  }

  // ------------------------------------------------------------------------- remotes

  getRemote(id: string): Promise<Remote> {
    return this.#remotes.getRemote(id)
  }

  getRemoteWithCredentials(id: string): Promise<Remote> {
    return this.#remotes.getRemoteWithCredentials(id)
  }

  getAllRemotes(): Promise<Remote[]> {
    return this.#remotes.getAllRemotes()
  }

  getRemoteHandler(remoteOrId: string | { readonly id: string }): Promise<FsHandler> {
    return this.#remotes.getRemoteHandler(remoteOrId)
  }

  createRemote(props: { name: string; url: string; options?: string; enabled?: boolean }): Promise<Remote> {
    return this.#remotes.createRemote(props)
  }

  updateRemote(id: string, patch: RemotePatch): Promise<Remote> {
    return this.#remotes.updateRemote(id, patch)
  }

  removeRemote(id: string): Promise<void> {
    return this.#remotes.removeRemote(id)
  }

  testRemote(id: string): Promise<unknown> {
    return this.#remotes.testRemote(id)
  }

  /** `backupNg.listVmBackups`: cached per remote for a minute (`backups.listingDebounce`) */
  listVmBackupsNg(remoteIds: readonly string[], { _forceRefresh = false }: { _forceRefresh?: boolean } = {}): Promise<Record<string, Record<string, ListedBackup[]>>> {
    return this.#backupsListing.list(remoteIds, { forceRefresh: _forceRefresh })
  }

  /** drops the cached listing of a remote: the next `listVmBackups` reads the remote again */
  invalidateVmBackupsListing(remoteId: string): void {
    this.#backupsListing.invalidate(remoteId)
  }

  // ------------------------------------------------------------------------- jobs and schedules

  registerJobExecutor(type: string, executor: JobExecutor<XoApp>): void {
    this.#jobs.registerJobExecutor(type, executor)
  }

  createJob(job: NewJob): Promise<Job> {
    return this.#jobs.createJob(job)
  }

  updateJob(job: Partial<Job> & { id: string }, merge = true): Promise<void> {
    return this.#jobs.updateJob(job, merge)
  }

  getJob(id: string, type?: string): Promise<Job> {
    return this.#jobs.getJob(id, type)
  }

  getAllJobs(type?: string): Promise<Job[]> {
    return this.#jobs.getAllJobs(type)
  }

  removeJob(id: string): Promise<void> {
    return this.#jobs.removeJob(id)
  }

  runJobSequence(ids: readonly string[], schedule?: Schedule, data?: unknown): Promise<void> {
    return this.#jobs.runJobSequence(ids, schedule, data)
  }

  cancelJobRun(runJobId: string): void {
    this.#jobs.cancelJobRun(runJobId)
  }

  /**
   * Every job run, whatever its job (host double only: xo-server has no such listing), keyed by
   * run id, with the task logs linked by `jobUpdateFct`. What XO shows is `getBackupNgLogs`.
   */
  getJobRunLogs(): Record<string, RunLog & { tasks?: TaskLog[] }> {
    return this.#jobs.getRunLogs()
  }

  /**
   * XO's backup logs by xo-server 5.207's rule (its `getBackupNgLogs`, `backupNg.getAllLogs`,
   * Backup → Logs): runs of `backup` jobs and of jobs without `key` only, each with the tree of
   * the task its executor linked with `jobUpdateFct`
   */
  getBackupNgLogs(): Record<string, BackupLog> {
    return consolidateBackupLogs(
      this.#logs.entries('jobs'),
      id => {
        try {
          return this.tasks.get(id)
        } catch {
          return undefined
        }
      },
      this.#jobs.runningJobs
    )
  }

  createSchedule(props: ScheduleProps): Promise<Schedule> {
    return this.#schedules.createSchedule(props)
  }

  updateSchedule(schedule: SchedulePatch & { id: string }): Promise<void> {
    return this.#schedules.updateSchedule(schedule)
  }

  deleteSchedule(id: string): Promise<void> {
    return this.#schedules.deleteSchedule(id)
  }

  getSchedule(id: string): Promise<Schedule> {
    return this.#schedules.getSchedule(id)
  }

  getAllSchedules(): Promise<Schedule[]> {
    return this.#schedules.getAllSchedules()
  }

  /** how many schedule timers are running */
  get activeScheduleCount(): number {
    return this.#schedules.activeCount
  }

  // ------------------------------------------------------------------------- plugins

  loadPluginPackage(dir: string, opts?: { autoload?: boolean }): Promise<string> {
    return this.#plugins.loadPluginPackage(dir, opts)
  }

  getPlugin(id: string): Promise<PluginInfo> {
    return this.#plugins.getPlugin(id)
  }

  getPlugins(): Promise<PluginInfo[]> {
    return this.#plugins.getPlugins()
  }

  configurePlugin(id: string, configuration: Record<string, unknown>, mergeWithExisting: boolean | { mergeWithExisting?: boolean } = false): Promise<void> {
    return this.#plugins.configurePlugin(id, configuration, mergeWithExisting)
  }

  purgePluginConfiguration(id: string): Promise<void> {
    return this.#plugins.purgePluginConfiguration(id)
  }

  enablePluginAutoload(id: string): Promise<void> {
    return this.#plugins.setAutoload(id, true)
  }

  disablePluginAutoload(id: string): Promise<void> {
    return this.#plugins.setAutoload(id, false)
  }

  loadPlugin(id: string): Promise<void> {
    return this.#plugins.loadPlugin(id)
  }

  unloadPlugin(id: string): Promise<void> {
    return this.#plugins.unloadPlugin(id)
  }

  testPlugin(id: string, data: unknown): Promise<unknown> {
    return this.#plugins.testPlugin(id, data)
  }

  /** `<datadir>/<id>`, created */
  getDataDir(id: string): Promise<string> {
    return this.#plugins.getDataDir(id)
  }

  // ------------------------------------------------------------------------- stores and logs

  getStore(namespace: string): KeyValueStore {
    return this.#stores.get(namespace)
  }

  getLogger(namespace: string): Logger {
    return this.#logs.getLogger(namespace)
  }

  /** every log entry of a namespace (or all), oldest first */
  getLogs(namespace?: string): ReturnType<Logs['entries']> {
    return this.#logs.entries(namespace)
  }

  // ------------------------------------------------------------------------- shutdown

  /** unloads plugins, stops schedules, forgets handlers, disconnects pools, flushes files */
  async stop(): Promise<void> {
    this.emit('stop')
    await this.#schedules.close()
    await this.#plugins.unloadAll()
    await this.#jobs.close()
    for (const connection of [...this.#connections]) connection.close()
    await Promise.all([this.#remotes.close(), this.#xapis.close(), this.#stores.flush(), this.#logs.flush()])
  }
}
