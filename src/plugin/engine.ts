/**
 * What the plugin asks of the backup engine (lifecycle, repository, restore). The plugin only
 * calls these; tests can hand the plugin another engine. The default one loads the engine's
 * modules on first use, so loading the plugin stays cheap.
 */
import type { HealthCheckOptions } from '../health-check/health-check.js'
import type { HealthCheckResult, JobEnvironment, JobRunResult, JobSpec } from '../lifecycle/job.js'
import type { BackupError } from '../errors.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { ListedRestorePoint } from '../repository/restore-points.js'
import type { VerifyOptions, VerifyReport } from '../repository/verify.js'
import type { RestoreVmOptions, RestoreVmResult } from '../restore/restore-vm.js'

export type { HealthCheckResult, ListedRestorePoint, RestoreVmOptions, RestoreVmResult, VerifyReport }

/** a health check as the plugin asks for it: the engine restores with its own restore */
export type HealthCheckRequest = Omit<HealthCheckOptions, 'restore'>

export interface Engine {
  runJob(job: JobSpec, env: JobEnvironment): Promise<JobRunResult>
  /** every restore point, damaged ones with their reason */
  listRestorePoints(handler: RemoteHandler, filter?: { vm?: string; jobId?: string }): Promise<ListedRestorePoint[]>
  verifyRemote(handler: RemoteHandler, opts?: VerifyOptions): Promise<VerifyReport>
  restoreVm(opts: RestoreVmOptions): Promise<RestoreVmResult>
  /** never rejects: a failure is in the result (`status`, `code`, `error`) and in `failure` */
  healthCheck(opts: HealthCheckRequest): Promise<HealthCheckResult & { readonly failure?: BackupError }>
}

export const defaultEngine: Engine = {
  async runJob(job, env) {
    const { runJob } = await import('../lifecycle/run-job.js')
    return runJob(job, env)
  },
  async listRestorePoints(handler, filter) {
    const { listRestorePointsWithStatus } = await import('../repository/restore-points.js')
    return listRestorePointsWithStatus(handler, filter)
  },
  async verifyRemote(handler, opts) {
    const { verifyRemote } = await import('../repository/verify.js')
    return verifyRemote(handler, opts)
  },
  async restoreVm(opts) {
    const { restoreVm } = await import('../restore/restore-vm.js')
    return restoreVm(opts)
  },
  async healthCheck(opts) {
    const [{ healthCheck }, { restoreVm }] = await Promise.all([import('../health-check/health-check.js'), import('../restore/restore-vm.js')])
    return healthCheck({ ...opts, restore: restoreVm })
  },
}
