/**
 * The recent runs of the plugin's jobs with their logs, newest first, for `getRuns`. Only the
 * last `limit` runs are kept; everything in them has been redacted.
 */
import type { JobRunResult } from '../lifecycle/job.js'
import type { RedactedError } from './redact.js'
import type { LogEntry } from './run-log.js'

export type RunStatus = 'running' | JobRunResult['status'] | 'cancelled'

export interface RunRecord {
  readonly id: string
  readonly jobId: string
  readonly jobName: string
  readonly trigger: 'manual' | 'schedule'
  readonly scheduleId?: string
  taskId?: string
  readonly start: number
  end?: number
  status: RunStatus
  result?: JobRunResult
  error?: RedactedError
  readonly log: LogEntry[]
}

export class RunHistory {
  readonly #runs: RunRecord[] = []
  readonly #limit: number

  constructor(limit = 50) {
    this.#limit = limit
  }

  add(run: RunRecord): RunRecord {
    this.#runs.unshift(run)
    this.#runs.splice(this.#limit)
    return run
  }

  list(): RunRecord[] {
    return structuredClone(this.#runs)
  }
}
