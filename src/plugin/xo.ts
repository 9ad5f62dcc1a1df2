/**
 * The narrow part of xo-server's `xo` object (its app) that the plugin uses, as xo-server 5.x
 * offers it to a plugin factory. Nothing else of `xo` is relied upon.
 */
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'

/** XO's JSON-schema flavour for API parameters: every property required unless `optional` */
export type XoParams = { readonly [name: string]: XoParamSchema }
export type XoParamSchema = { readonly [keyword: string]: unknown }

type ApiFunction = { bivarianceHack(params: Record<string, unknown>): Promise<unknown> }['bivarianceHack']

/** an API method as `xo.addApiMethods` takes it: only these properties may sit on the function */
export interface XoApiMethod extends ApiFunction {
  description: string
  params: XoParams
  permission: 'admin'
}

export interface XoJob {
  readonly id: string
  readonly type: string
  readonly name?: string
  /** XO's own key of a job (the plugin's jobs have none: see `xo-jobs.ts`) */
  readonly key?: string
  /** the plugin's own job id */
  readonly continuousDeltaJobId?: string
}

export interface XoSchedule {
  readonly id: string
  readonly jobId: string
  readonly cron: string
  readonly timezone?: string
  readonly enabled: boolean
  readonly name?: string
}

/** what xo-server hands a job executor (the fields the plugin reads) */
export interface XoJobExecutorParams {
  readonly job: XoJob
  readonly schedule?: XoSchedule
  readonly data?: unknown
  readonly runJobId?: string
  /** links an `xo.tasks` task to the run in XO's backup logs */
  readonly jobUpdateFct?: (taskId: string) => unknown
  /** promise-toolbox's CancelToken: its promise settles when the run is cancelled */
  readonly cancelToken?: { readonly promise?: PromiseLike<unknown> }
}
export type XoJobExecutor = (params: XoJobExecutorParams) => Promise<unknown>

/** an `@vates/task` Task, as `xo.tasks.create` returns it */
export interface XoTask {
  readonly id: string
  /** runs `fn` inside the task (starting it if needed) without ending it */
  runInside<T>(fn: () => T): Promise<T>
  info(message: string, data?: unknown): void
  warning(message: string, data?: unknown): void
  set(name: string, value: unknown): void
  success(result?: unknown): void
  failure(error: unknown): void
}

/** the Task class (a task's `constructor`): an instance created while a task runs is its subtask */
export interface XoTaskClass {
  new (opts: { properties: Record<string, unknown> }): XoTask
  /** the abort signal of the task running the caller */
  readonly abortSignal?: AbortSignal | undefined
}

export interface XoTasks {
  create(properties: { name: string; type?: string; objectId?: string; [property: string]: unknown }): XoTask
}

export interface XoRemote {
  readonly id: string
  readonly name: string
  readonly enabled: boolean
}

export interface XoObject {
  readonly id: string
  readonly type: string
  readonly name_label?: string
}

export interface XoApp extends XoReportTransports {
  addApiMethods(methods: { readonly [namespace: string]: { readonly [name: string]: XoApiMethod } }): () => void
  configurePlugin(id: string, configuration: unknown): Promise<void>
  registerJobExecutor(type: string, executor: XoJobExecutor): void

  createJob(job: { type: string; name: string; continuousDeltaJobId: string }): Promise<XoJob>
  updateJob(job: { id: string; name: string }): Promise<unknown>
  getAllJobs(type?: string): Promise<XoJob[]>
  removeJob(id: string): Promise<unknown>
  runJobSequence(ids: string[], schedule?: XoSchedule, data?: unknown): Promise<unknown>

  createSchedule(schedule: { cron: string; timezone?: string; enabled: boolean; jobId: string; name: string }): Promise<XoSchedule>
  getAllSchedules(): Promise<XoSchedule[]>
  deleteSchedule(id: string): Promise<unknown>

  /** throws when no connected pool holds that object */
  getObject(id: string, type?: string): XoObject
  getXapi(id: string): XapiClient
  /** credentials obfuscated; throws for an unknown id */
  getRemote(id: string): Promise<XoRemote>
  /** connected and cached; throws for a disabled remote */
  getRemoteHandler(id: string): Promise<RemoteHandler>

  readonly tasks: XoTasks
  /** drops XO's cached listing of a remote's backups (Backup → Restore); absent before xo-server 5.x with backups-ng */
  readonly invalidateVmBackupsListing?: (remoteId: string) => unknown
}

/**
 * The report transports: each is installed on `xo` by its plugin while that plugin is loaded
 * (`xo.defineProperty`), and absent otherwise.
 */
export interface XoReportTransports {
  readonly sendEmail?: (message: { to: string[]; subject: string; markdown: string }) => unknown
  readonly sendToXmppClient?: (message: { to: string[]; message: string }) => unknown
  readonly sendSlackMessage?: (message: { message: string }) => unknown
  readonly sendIcinga2Status?: (message: { status: 'OK' | 'WARNING' | 'CRITICAL'; message: string }) => unknown
}

/** what xo-server calls the default export with */
export interface XoPluginOptions {
  readonly xo: XoApp
  readonly staticConfig?: unknown
  readonly getDataDir?: () => Promise<string>
}
