/** Collects the repeated measurements of one implementation in one case. */
import type { TaskOutcome, TaskResult } from '../tasks/protocol.js'
import { round, summarize } from './stats.js'

export interface Measured {
  readonly status: 'measured'
  readonly median_ms: number
  readonly min_ms: number
  readonly max_ms: number
  readonly runs_ms: readonly number[]
  /** highest peak RSS over the runs, MiB (null: a step timed within another run, no process of its own) */
  readonly peak_rss_mib: number | null
  /** every run's output matched the expected content hash (null: nothing to verify) */
  readonly verified: boolean | null
  /** bytes produced per run (median), where it applies */
  readonly bytes?: number
}

export interface NotMeasured {
  readonly status: 'skipped' | 'error'
  readonly reason: string
}

export type ImplResult = Measured | NotMeasured

export interface CaseContext {
  readonly workDir: string
  readonly rounds: number
  readonly seed: number
  readonly cpuProfileDir?: string
  log(message: string): void
}

export class Series {
  readonly #runs: TaskResult[] = []
  readonly #verified: (boolean | null)[] = []
  #failure: NotMeasured | undefined

  /** false once the implementation was skipped or failed: the later rounds do not try it again */
  get active(): boolean {
    return this.#failure === undefined
  }

  /** records an outcome; returns its result when it was measured */
  record(outcome: TaskOutcome): TaskResult | undefined {
    if (outcome.ok) {
      this.#runs.push(outcome.result)
      return outcome.result
    }
    this.#failure = { status: outcome.skipped ? 'skipped' : 'error', reason: outcome.reason }
    return undefined
  }

  verify(verified: boolean | null): void {
    this.#verified.push(verified)
  }

  get runs(): readonly TaskResult[] {
    return this.#runs
  }

  result(): ImplResult {
    if (this.#failure !== undefined && this.#runs.length === 0) return this.#failure
    if (this.#failure !== undefined) return { status: 'error', reason: `failed after ${this.#runs.length} runs: ${this.#failure.reason}` }
    if (this.#runs.length === 0) return { status: 'skipped', reason: 'skipped: not run' }
    const bytes = this.#runs.map(run => run.bytes).filter((b): b is number => b !== undefined)
    const checks = this.#verified.filter((v): v is boolean => v !== null)
    return {
      ...measured(this.#runs.map(run => run.ms)),
      peak_rss_mib: Math.max(...this.#runs.map(run => run.peakRssMiB)),
      verified: checks.length === 0 ? null : checks.every(Boolean),
      ...(bytes.length > 0 ? { bytes: summarize(bytes).median } : {}),
    }
  }
}

/** the times of one step within other runs (e.g. the pool's snapshot in our backup run), as a line of its own */
export function stepTimes(values: readonly number[]): ImplResult {
  if (values.length === 0) return { status: 'skipped', reason: 'skipped: not timed' }
  return { ...measured(values), peak_rss_mib: null, verified: null }
}

/** the median, extremes and values of `values` (ms), rounded */
function measured(values: readonly number[]) {
  const ms = summarize([...values])
  return {
    status: 'measured' as const,
    median_ms: round(ms.median),
    min_ms: round(ms.min),
    max_ms: round(ms.max),
    runs_ms: ms.values.map(v => round(v)),
  }
}

export function medianOf(result: ImplResult): number | undefined {
  return result.status === 'measured' ? result.median_ms : undefined
}

export function rssOf(result: ImplResult): number | null {
  return result.status === 'measured' ? result.peak_rss_mib : null
}

/** the order of the implementations in round `r`: rotated so that none always runs first */
export function rotate<T>(items: readonly T[], r: number): T[] {
  const shift = r % items.length
  return [...items.slice(shift), ...items.slice(0, shift)]
}
