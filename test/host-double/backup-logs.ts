/**
 * XO's backup logs (`xo-mixins/backups-ng-logs.mjs` `getBackupNgLogs`, what Backup → Logs and
 * `backupNg.getAllLogs` show), consolidated from the `jobs` log entries by xo-server 5.207's rule:
 * - a run (`job.start` entry) is kept only when its job's `type === 'backup'` or it has no `key`;
 * - `job.backupTaskStart` (logged once by `jobUpdateFct(taskId)`) links a task of the task store:
 *   that task's own subtasks become the run's `tasks`, each task's `properties.name` its `message`
 *   and its other properties its `data`;
 * - `job.end` ends the run: `failure` when the executor threw (`skipped` for XO's "nothing to
 *   do" errors), else `failure` if a top-level task failed, `skipped` if one was skipped, else
 *   `success`; a run neither running nor ended is `interrupted`.
 */
import type { LogEntry } from './logs.js'
import type { TaskLog } from './tasks.js'

export interface BackupLogTask {
  id: string
  message: string
  data: Record<string, unknown>
  start: number
  end?: number
  status: string
  result?: unknown
  infos?: unknown[]
  warnings?: unknown[]
  tasks?: BackupLogTask[]
}

export interface BackupLog {
  readonly id: string
  readonly jobId: string
  readonly jobName: string | undefined
  readonly message: 'backup'
  readonly scheduleId: string | undefined
  readonly data: unknown
  readonly start: number
  end?: number
  status: string
  result?: unknown
  tasks?: BackupLogTask[] | TaskLog[]
}

const SKIPPED_ERRORS = new Set(['no disks found', 'no VMs match this pattern', 'unhealthy VDI chain'])

function statusOf(error: unknown): string {
  if (error === undefined) return 'success'
  const message = typeof error === 'object' && error !== null ? Reflect.get(error, 'message') : undefined
  return typeof message === 'string' && SKIPPED_ERRORS.has(message) ? 'skipped' : 'failure'
}

function withTasks(status: string, tasks: readonly { status: string }[] | undefined): string {
  if (status === 'failure' || tasks === undefined) return status
  for (const task of tasks) {
    if (task.status === 'failure') return 'failure'
    if (task.status === 'skipped') status = 'skipped'
  }
  return status
}

function adapt(task: TaskLog): BackupLogTask {
  const { name, ...data } = task.properties
  const { properties: _properties, tasks, ...rest } = structuredClone(task)
  return {
    ...rest,
    message: String(name),
    data,
    ...(tasks === undefined ? {} : { tasks: tasks.map(adapt) }),
  }
}

export function consolidateBackupLogs(
  entries: readonly LogEntry[],
  getTask: (id: string) => TaskLog | undefined,
  runningJobs: ReadonlyMap<string, string>
): Record<string, BackupLog> {
  const consolidated: Record<string, BackupLog> = {}
  const started = new Map<string, BackupLog>()
  for (const { id, time, data } of entries) {
    if (data === undefined) continue
    const event = data['event']
    if (event === 'job.start') {
      if (data['type'] !== 'backup' && data['key'] !== undefined) continue
      const jobId = String(data['jobId'])
      const log: BackupLog = {
        data: data['data'],
        id,
        jobId,
        jobName: data['jobName'] as string | undefined,
        message: 'backup',
        scheduleId: data['scheduleId'] as string | undefined,
        start: time,
        status: runningJobs.get(jobId) === id ? 'pending' : 'interrupted',
      }
      consolidated[id] = log
      started.set(id, log)
    } else if (event === 'job.backupTaskStart') {
      const log = started.get(String(data['runJobId']))
      const task = getTask(String(data['backupTaskId']))
      if (log !== undefined && task !== undefined) log.tasks = [task]
    } else if (event === 'job.end') {
      const runJobId = String(data['runJobId'])
      const log = started.get(runJobId)
      if (log === undefined) continue
      started.delete(runJobId)
      log.end = time
      log.result = data['error']
      log.status = withTasks(statusOf(data['error']), log.tasks as { status: string }[] | undefined)
    }
  }
  for (const log of Object.values(consolidated)) {
    const [root] = (log.tasks ?? []) as TaskLog[]
    if (root?.properties !== undefined) log.tasks = (root.tasks ?? []).map(adapt)
  }
  return consolidated
}
