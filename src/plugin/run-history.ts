/**
 * The runs of the plugin's jobs with their logs, for `getRuns`: everything in them redacted.
 *
 * With a folder (in the data dir xo-server gives the plugin) each job has its own append-only
 * file of JSON lines, `<job id>.jsonl`: a line when a run starts, a line with the whole record
 * when it ends. Nothing is held in memory but the runs going on: a query reads the files
 * backwards from their end (newest first) and stops as soon as it has what it asked for, so a
 * year of nightly runs of 50 VMs is listed, filtered and paged without loading it. A file that
 * grows past `maxFileBytes` becomes `<job id>.1.jsonl` (replacing the one before): at least
 * `maxFileBytes` of history is kept per job. A run that started but has no end line did not
 * finish (xo-server stopped): it is listed `interrupted`.
 *
 * Without a folder (unit tests, before `load`) only the last `limit` runs are kept in memory.
 */
import { open, readdir, readFile, rename, rm, stat, appendFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'

import type { HealthCheckResult, JobRunResult } from '../lifecycle/job.js'
import { assertSafeId } from '../repository/layout.js'
import type { RedactedError } from './redact.js'
import type { LogEntry } from './run-log.js'

export type RunStatus = 'running' | JobRunResult['status'] | 'cancelled' | 'interrupted'

export interface RunRecord {
  readonly id: string
  /** a backup run (absent in records of earlier versions), or a health check asked for on its own */
  readonly kind?: 'backup' | 'healthCheck'
  readonly jobId: string
  readonly jobName: string
  readonly trigger: 'manual' | 'schedule'
  /** a backup run's number among its job's runs, from 1 (what "every N runs" counts) */
  readonly number?: number
  readonly scheduleId?: string
  taskId?: string
  readonly start: number
  end?: number
  status: RunStatus
  result?: JobRunResult
  /** a health check's result (`kind: 'healthCheck'`) */
  healthCheck?: HealthCheckResult
  error?: RedactedError
  readonly log: LogEntry[]
}

export interface RunFilter {
  /** a job id */
  readonly job?: string | undefined
  /** a VM uuid: the runs whose result has this VM */
  readonly vm?: string | undefined
  readonly status?: RunStatus | undefined
  /** runs started at or after (ms since the epoch) */
  readonly since?: number | undefined
  /** default 50 */
  readonly limit?: number | undefined
}

const DEFAULT_LIMIT = 50
const CHUNK = 64 * 1024
const EXTENSION = '.jsonl'
const ROTATED = '.1.jsonl'

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

function parseLine(line: string): RunRecord | undefined {
  try {
    const value: unknown = JSON.parse(line)
    return isRunRecord(value) ? value : undefined
  } catch {
    // a line cut short by a crash
    return undefined
  }
}

function matches(run: RunRecord, filter: RunFilter): boolean {
  if (filter.job !== undefined && run.jobId !== filter.job) return false
  if (filter.status !== undefined && run.status !== filter.status) return false
  if (filter.since !== undefined && run.start < filter.since) return false
  if (filter.vm !== undefined && !(run.result?.vms ?? []).some(vm => vm.vm === filter.vm) && run.healthCheck?.vm !== filter.vm) return false
  return true
}

/**
 * Calls `onLine` with the lines of `file` from the last to the first; stops when it returns
 * false. Resolves with the bytes read.
 */
export async function readLinesBackwards(file: string, onLine: (line: string) => boolean): Promise<number> {
  let handle
  try {
    handle = await open(file, 'r')
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return 0
    throw error
  }
  try {
    let position = (await handle.stat()).size
    let bytesRead = 0
    let pending: Buffer[] = [] // the start of the last line seen so far (chunks read later come first)
    const flush = (parts: Buffer[]): boolean => {
      const line = Buffer.concat(parts).toString('utf8')
      return line.trim() === '' || onLine(line)
    }
    while (position > 0) {
      const length = Math.min(CHUNK, position)
      position -= length
      const chunk = Buffer.alloc(length)
      await handle.read(chunk, 0, length, position)
      bytesRead += length
      let end = length
      for (let index = length - 1; index >= 0; index--) {
        if (chunk[index] !== 0x0a) continue
        const parts = [chunk.subarray(index + 1, end), ...pending]
        pending = []
        end = index
        if (!flush(parts)) return bytesRead
      }
      pending = [chunk.subarray(0, end), ...pending]
    }
    if (pending.length > 0) flush(pending)
    return bytesRead
  } finally {
    await handle.close()
  }
}

export class RunHistory {
  readonly #limit: number
  readonly #maxFileBytes: number
  /** without a folder: the last runs, newest first */
  #recent: RunRecord[] = []
  readonly #running = new Map<string, RunRecord>()
  #dir: string | undefined
  #writing: Promise<void> = Promise.resolve()
  /** bytes read from the files by the last query (what `list` costs) */
  lastBytesRead = 0

  constructor({ limit = DEFAULT_LIMIT, maxFileBytes = 128 * 1024 * 1024 }: { limit?: number; maxFileBytes?: number } = {}) {
    this.#limit = limit
    this.#maxFileBytes = maxFileBytes
  }

  /**
   * Keeps the history in `dir` from now on. A history of an earlier version (`legacyFile`, one
   * JSON array of the last 50 runs) is moved into it once.
   */
  async useDir(dir: string, legacyFile?: string): Promise<void> {
    if (this.#dir === dir) return
    await mkdir(dir, { recursive: true })
    this.#dir = dir
    const earlier = [...this.#recent].reverse()
    this.#recent = []
    if (legacyFile !== undefined) {
      let stored: unknown
      try {
        stored = JSON.parse(await readFile(legacyFile, 'utf8'))
      } catch {
        stored = []
      }
      const legacy = Array.isArray(stored) ? stored.filter(isRunRecord).reverse() : []
      for (const run of legacy) await this.#append({ ...run, status: run.status === 'running' ? 'interrupted' : run.status })
      await rm(legacyFile, { force: true })
    }
    for (const run of earlier) if (!this.#running.has(run.id)) await this.#append(run)
  }

  /** a run that starts: listed as running until `finish` */
  async start(run: RunRecord): Promise<RunRecord> {
    this.#running.set(run.id, run)
    if (this.#dir === undefined) {
      this.#recent.unshift(run)
      this.#recent.splice(this.#limit)
    } else {
      await this.#append({ ...run, log: [] }).catch(() => {
        // the history is a convenience: a full disk must not fail a backup run
      })
    }
    return run
  }

  /** the run has ended: its whole record is written */
  async finish(run: RunRecord): Promise<void> {
    this.#running.delete(run.id)
    if (this.#dir !== undefined) {
      await this.#append(run).catch(() => {
        // as above
      })
    }
  }

  /** the runs that match, newest first */
  async list(filter: RunFilter = {}): Promise<RunRecord[]> {
    const limit = filter.limit ?? DEFAULT_LIMIT
    const dir = this.#dir
    if (dir === undefined) return structuredClone(this.#recent.filter(run => matches(run, filter)).slice(0, limit))
    // the runs going on as the query starts, taken before waiting for the writes: a run that ends
    // from here on is listed from this copy (running), and one that ended before has its end line
    // among the writes waited for — never "interrupted" for a run that merely ended meanwhile
    const live = new Map(this.#running)
    await this.#writing
    let jobs: string[]
    if (filter.job !== undefined) {
      jobs = [assertSafeId('job', filter.job)]
    } else {
      const names = await readdir(dir).catch(() => [])
      jobs = [...new Set(names.filter(name => name.endsWith(EXTENSION)).map(name => name.slice(0, name.endsWith(ROTATED) ? -ROTATED.length : -EXTENSION.length)))]
    }
    this.lastBytesRead = 0
    const runs: RunRecord[] = []
    for (const job of jobs) runs.push(...(await this.#readJob(dir, job, filter, limit, live)))
    return runs.sort((a, b) => b.start - a.start).slice(0, limit)
  }

  /**
   * The number of the job's newest backup run (0 when it has none numbered): its files are read
   * from their end up to that run only.
   */
  async lastRunNumber(jobId: string): Promise<number> {
    const isBackup = (run: RunRecord): boolean => run.kind !== 'healthCheck'
    const dir = this.#dir
    if (dir === undefined) return this.#recent.find(run => run.jobId === jobId && isBackup(run))?.number ?? 0
    await this.#writing
    let found: number | undefined
    const onLine = (line: string): boolean => {
      const stored = parseLine(line)
      if (stored === undefined || !isBackup(stored)) return true
      found = stored.number ?? 0
      return false
    }
    for (const name of [`${assertSafeId('job', jobId)}${EXTENSION}`, `${jobId}${ROTATED}`]) {
      await readLinesBackwards(join(dir, name), onLine)
      if (found !== undefined) break
    }
    return found ?? 0
  }

  /** the newest `limit` matching runs of one job: its files read from their end */
  async #readJob(dir: string, job: string, filter: RunFilter, limit: number, running: ReadonlyMap<string, RunRecord>): Promise<RunRecord[]> {
    const seen = new Set<string>()
    const found: RunRecord[] = []
    let done = false
    const onLine = (line: string): boolean => {
      const stored = parseLine(line)
      if (stored === undefined || seen.has(stored.id)) return true
      seen.add(stored.id)
      // runs of a job never overlap: once one started before `since`, all older ones did
      if (filter.since !== undefined && stored.start < filter.since) {
        done = true
        return false
      }
      const live = running.get(stored.id)
      const run: RunRecord = live !== undefined ? structuredClone(live) : stored.status === 'running' ? { ...stored, status: 'interrupted' } : stored
      if (matches(run, filter)) found.push(run)
      if (found.length >= limit) done = true
      return !done
    }
    for (const name of [`${job}${EXTENSION}`, `${job}${ROTATED}`]) {
      this.lastBytesRead += await readLinesBackwards(join(dir, name), onLine)
      if (done) break
    }
    return found
  }

  /** appends one line to the run's job file; writes never overlap */
  #append(run: RunRecord): Promise<void> {
    const dir = this.#dir
    if (dir === undefined) return Promise.resolve()
    const write = this.#writing.then(async () => {
      const file = join(dir, `${assertSafeId('job', run.jobId)}${EXTENSION}`)
      await appendFile(file, `${JSON.stringify(run)}\n`)
      const { size } = await stat(file)
      if (size > this.#maxFileBytes) await rename(file, join(dir, `${run.jobId}${ROTATED}`))
    })
    this.#writing = write.catch(() => undefined)
    return write
  }
}
