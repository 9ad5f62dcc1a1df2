/**
 * A `RunReporter` that keeps a run's log as plain data (for `getRuns`), and one that forwards
 * to several reporters. Every message and datum is redacted on the way in.
 */
import type { RunReporter } from '../lifecycle/job.js'
import { redactError, redactText, redactValue } from './redact.js'
import type { RedactedError } from './redact.js'

export interface LogEntry {
  readonly time: number
  /** the scopes from the run down, e.g. ['vm1', 'system'] */
  readonly scope: readonly string[]
  readonly level: 'info' | 'warning' | 'start' | 'end'
  readonly message: string
  readonly data?: unknown
  readonly status?: 'success' | 'failure' | 'skipped'
  readonly error?: RedactedError
}

export class LogReporter implements RunReporter {
  readonly #entries: LogEntry[]
  readonly #scope: readonly string[]
  readonly #limit: number
  #ended = false

  constructor(entries: LogEntry[] = [], scope: readonly string[] = [], limit = 5000) {
    this.#entries = entries
    this.#scope = scope
    this.#limit = limit
  }

  get entries(): readonly LogEntry[] {
    return this.#entries
  }

  #push(entry: Omit<LogEntry, 'time' | 'scope'>): void {
    if (this.#entries.length < this.#limit) this.#entries.push({ time: Date.now(), scope: this.#scope, ...entry })
  }

  info(message: string, data?: Record<string, unknown>): void {
    this.#push({ level: 'info', message: redactText(message), ...(data === undefined ? {} : { data: redactValue(data) }) })
  }

  warning(message: string, data?: Record<string, unknown>): void {
    this.#push({ level: 'warning', message: redactText(message), ...(data === undefined ? {} : { data: redactValue(data) }) })
  }

  child(name: string, data?: Record<string, unknown>): RunReporter {
    const child = new LogReporter(this.#entries, [...this.#scope, name], this.#limit)
    child.#push({ level: 'start', message: redactText(name), ...(data === undefined ? {} : { data: redactValue(data) }) })
    return child
  }

  progress(): void {
    // progress is shown live by the task; the log keeps what happened
  }

  end(result?: { status: 'success' | 'failure' | 'skipped'; error?: Error; data?: Record<string, unknown> }): void {
    if (this.#ended) return
    this.#ended = true
    this.#push({
      level: 'end',
      message: this.#scope[this.#scope.length - 1] ?? 'run',
      status: result?.status ?? 'success',
      ...(result?.error === undefined ? {} : { error: redactError(result.error) }),
      ...(result?.data === undefined ? {} : { data: redactValue(result.data) }),
    })
  }
}

/** forwards every call to each reporter */
export class TeeReporter implements RunReporter {
  readonly #targets: readonly RunReporter[]

  constructor(...targets: RunReporter[]) {
    this.#targets = targets
  }

  info(message: string, data?: Record<string, unknown>): void {
    for (const target of this.#targets) target.info(message, data)
  }

  warning(message: string, data?: Record<string, unknown>): void {
    for (const target of this.#targets) target.warning(message, data)
  }

  child(name: string, data?: Record<string, unknown>): RunReporter {
    return new TeeReporter(...this.#targets.map(target => target.child(name, data)))
  }

  progress(percent: number): void {
    for (const target of this.#targets) target.progress(percent)
  }

  end(result?: { status: 'success' | 'failure' | 'skipped'; error?: Error; data?: Record<string, unknown> }): void {
    for (const target of this.#targets) target.end(result)
  }
}
