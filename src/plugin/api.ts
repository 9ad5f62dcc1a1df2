/**
 * The plugin's API methods (namespace `continuousDelta`), as xo-server registers them: each
 * admin-only, described, with XO-style `params` derived from the schemas in `schema.ts`. Every
 * call validates its parameters again (typed values, clear messages) and redacts its errors.
 */
import type { Job } from './configuration.js'
import type { HealthCheckResult, ListedRestorePoint, VerifyReport } from './engine.js'
import { sanitizeError } from './redact.js'
import type { RunRecord } from './run-history.js'
import type { RunResult } from './runner.js'
import { apiParamsSchemas } from './schema.js'
import type { DeleteRestorePointResult, ForgetVmResult } from '../repository/delete.js'
import type {
  CreateJobParams,
  DeleteJobParams,
  DeleteRestorePointParams,
  EditJobParams,
  ForgetVmParams,
  GetRunsParams,
  HealthCheckParams,
  JobRefParams,
  ListRestorePointsParams,
  RestoreParams,
  VerifyParams,
} from './schema.js'
import { compileValidator } from './validation.js'
import { toXoParams } from './xo-params.js'
import type { XoApiMethod } from './xo.js'

export const API_NAMESPACE = 'continuousDelta'

/** what the API methods call: the plugin instance implements it */
export interface PluginApi {
  createJob(params: CreateJobParams): Promise<string>
  editJob(params: EditJobParams): Promise<Job>
  deleteJob(params: DeleteJobParams): Promise<DeleteJobResult>
  getJobs(): Promise<readonly Job[]>
  runJob(params: JobRefParams): Promise<RunResult>
  listRestorePoints(params: ListRestorePointsParams): Promise<readonly ListedRestorePoint[]>
  restore(params: RestoreParams): Promise<string>
  verify(params: VerifyParams): Promise<VerifyReport>
  getRuns(params: GetRunsParams): Promise<readonly RunRecord[]>
  deleteRestorePoint(params: DeleteRestorePointParams): Promise<DeleteRestorePointResult>
  forgetVm(params: ForgetVmParams): Promise<ForgetVmResult & { readonly snapshots: readonly string[] }>
  healthCheck(params: HealthCheckParams): Promise<HealthCheckResult & { readonly taskId?: string }>
}

/** what deleting a job did */
export interface DeleteJobResult {
  readonly id: string
  readonly name: string
  /** reference snapshots destroyed, by VM */
  readonly snapshots: readonly { readonly vm: string; readonly name: string }[]
  /** restore points deleted (with `deleteBackups`) */
  readonly restorePoints: readonly string[]
  /** what could not be done, by VM, and why */
  readonly failures: readonly { readonly vm: string; readonly what: string; readonly error: string }[]
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
    deleteJob: method<DeleteJobParams>(
      'deleteJob',
      "Deletes a job and destroys its reference snapshots; its restore points stay on the remote unless deleteBackups is true",
      params => api.deleteJob(params)
    ),
    getJobs: method<Record<string, never>>('getJobs', 'Lists the configured jobs', () => api.getJobs()),
    runJob: method<JobRefParams>(
      'runJob',
      'Runs a job now, even when it is disabled, and returns the result of the run',
      params => api.runJob(params)
    ),
    listRestorePoints: method<ListRestorePointsParams>(
      'listRestorePoints',
      'Lists the restore points on a remote (optionally of one VM), oldest first; each has a status, "restorable" or "damaged" (with its reason)',
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
    getRuns: method<GetRunsParams>(
      'getRuns',
      'Lists runs with their logs, newest first: of one job, of one VM, of one status, since a date (ms); 50 unless limit says',
      params => api.getRuns(params)
    ),
    deleteRestorePoint: method<DeleteRestorePointParams>(
      'deleteRestorePoint',
      'Deletes one restore point; the others stay restorable with their bytes (the full, or a delta between two others, is merged into the next one; nothing is deleted when that merge would meet damage)',
      params => api.deleteRestorePoint(params)
    ),
    forgetVm: method<ForgetVmParams>(
      'forgetVm',
      "Deletes every restore point this plugin wrote for a VM on a remote, and its jobs' reference snapshots of it; confirm with the same VM uuid",
      params => api.forgetVm(params)
    ),
    healthCheck: method<HealthCheckParams>(
      'healthCheck',
      "Health-checks a restore point of a job: restores it to an SR without network, starts it, waits for its guest tools (or the timeout), destroys it; resolves with the result, rejects naming why it failed",
      params => api.healthCheck(params)
    ),
  }
}
