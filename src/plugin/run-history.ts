/**
 * The recent runs of the plugin's jobs with their logs, newest first, for `getRuns`. Only the
 * last `limit` runs are kept; everything in them has been redacted. With a file (in the data dir
 * xo-server gives the plugin) the history outlives a restart: it is written, whole and
 * atomically (temporary file, then rename), each time a run ends.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

import type { JobRunResult } from '../lifecycle/job.js'
import type { RedactedError } from './redact.js'
import type { LogEntry } from './run-log.js'

export type RunStatus = 'running' | JobRunResult['status'] | 'cancelled' | 'interrupted'

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

function isRunRecord(value: unknown): value is RunRecord {
  if (typeof value !== 'object' || value === null) return false
  const field = (key: string): unknown => Reflect.get(value, key)
  return (
    typeof field('id') === 'string' &&
    typeof field('jobId') === 'string' &&
    typeof field('start') === 'number' &&
    typeof field('status') === 'string' &&
    Array.isArray(field('log'))
  )
}

export class RunHistory {
  #runs: RunRecord[] = []
  readonly #limit: number
  #file: string | undefined
  #saving: Promise<void> = Promise.resolve()

  constructor(limit = 50) {
    this.#limit = limit
  }

  /**
   * Keeps the history in `file` from now on, after reading what it holds; a run that was still
   * going when it was written did not finish: it is marked `interrupted`.
   */
  async useFile(file: string): Promise<void> {
    if (this.#file === file) return
    this.#file = file
    let stored: unknown
    try {
      stored = JSON.parse(await readFile(file, 'utf8'))
    } catch {
      stored = []
    }
    const previous = Array.isArray(stored) ? stored.filter(isRunRecord) : []
    for (const run of previous) if (run.status === 'running') run.status = 'interrupted'
    const known = new Set(this.#runs.map(run => run.id))
    this.#runs = [...this.#runs, ...previous.filter(run => !known.has(run.id))].slice(0, this.#limit)
  }

  add(run: RunRecord): RunRecord {
    this.#runs.unshift(run)
    this.#runs.splice(this.#limit)
    return run
  }

  list(): RunRecord[] {
    return structuredClone(this.#runs)
  }

  /** writes the history to its file, if it has one; writes never overlap */
  save(): Promise<void> {
    const file = this.#file
    if (file === undefined) return this.#saving
    this.#saving = this.#saving.then(async () => {
      const temporary = `${file}.${process.pid}.tmp`
      await mkdir(dirname(file), { recursive: true })
      await writeFile(temporary, JSON.stringify(this.#runs))
      await rename(temporary, file)
    }).catch(() => {
      // the history is a convenience: a full disk must not fail a backup run
    })
    return this.#saving
  }
}
