/**
 * The plugin's API methods (namespace `continuousDelta`), as xo-server registers them: each
 * admin-only, described, with XO-style `params` derived from the schemas in `schema.ts`. Every
 * call validates its parameters again (typed values, clear messages) and redacts its errors.
 */
import type { Job } from './configuration.js'
import type { RestorePoint, VerifyReport } from './engine.js'
import { sanitizeError } from './redact.js'
import type { RunRecord } from './run-history.js'
import type { RunResult } from './runner.js'
import { apiParamsSchemas } from './schema.js'
import type { CreateJobParams, EditJobParams, JobRefParams, ListRestorePointsParams, RestoreParams, VerifyParams } from './schema.js'
import { compileValidator } from './validation.js'
import { toXoParams } from './xo-params.js'
import type { XoApiMethod } from './xo.js'

export const API_NAMESPACE = 'continuousDelta'

/** what the API methods call: the plugin instance implements it */
export interface PluginApi {
  createJob(params: CreateJobParams): Promise<string>
  editJob(params: EditJobParams): Promise<Job>
  deleteJob(params: JobRefParams): Promise<void>
  getJobs(): Promise<readonly Job[]>
  runJob(params: JobRefParams): Promise<RunResult>
  listRestorePoints(params: ListRestorePointsParams): Promise<readonly RestorePoint[]>
  restore(params: RestoreParams): Promise<string>
  verify(params: VerifyParams): Promise<VerifyReport>
  getRuns(): Promise<readonly RunRecord[]>
}

type MethodName = keyof typeof apiParamsSchemas

function method<P>(name: MethodName, description: string, call: (params: P) => Promise<unknown>): XoApiMethod {
  const schema = apiParamsSchemas[name]
  const validate = compileValidator<P>(schema)
  const fn = async (params: Record<string, unknown>): Promise<unknown> => {
    try {
      return await call(validate(params ?? {}, `${API_NAMESPACE}.${name} parameters`))
    } catch (error) {
      throw sanitizeError(error)
    }
  }
  return Object.assign(fn, { description, params: toXoParams(schema), permission: 'admin' as const })
}

export function buildApiMethods(api: PluginApi): Record<MethodName, XoApiMethod> {
  return {
    createJob: method<CreateJobParams>(
      'createJob',
      'Creates a continuous delta backup job (saved in the plugin configuration) and returns its id',
      params => api.createJob(params)
    ),
    editJob: method<EditJobParams>('editJob', 'Changes the given fields of a job', params => api.editJob(params)),
    deleteJob: method<JobRefParams>('deleteJob', 'Deletes a job (its restore points stay on the remote)', params =>
      api.deleteJob(params)
    ),
    getJobs: method<Record<string, never>>('getJobs', 'Lists the configured jobs', () => api.getJobs()),
    runJob: method<JobRefParams>(
      'runJob',
      'Runs a job now, even when it is disabled, and returns the result of the run',
      params => api.runJob(params)
    ),
    listRestorePoints: method<ListRestorePointsParams>(
      'listRestorePoints',
      'Lists the restore points on a remote (optionally of one VM), oldest first',
      params => api.listRestorePoints(params)
    ),
    restore: method<RestoreParams>(
      'restore',
      'Restores a restore point as a new VM on an SR and returns the new VM uuid',
      params => api.restore(params)
    ),
    verify: method<VerifyParams>(
      'verify',
      'Checks the backups on a remote (optionally of one VM): chains, checksums and metadata',
      params => api.verify(params)
    ),
    getRuns: method<Record<string, never>>('getRuns', 'Lists the recent runs with their logs, newest first', () =>
      api.getRuns()
    ),
  }
}
