/**
 * `xo.getLogger(namespace)`: xo-server's log store. Each level method records an entry and
 * returns its id at once (jobs use the id of their "start" entry as the run id). Entries are
 * kept in memory and appended to `<datadir>/logs.ndjson`.
 */
import { appendFile, mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'

export const LOG_LEVELS = ['debug', 'info', 'notice', 'warning', 'error'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface LogEntry {
  readonly id: string
  readonly time: number
  readonly namespace: string
  readonly level: LogLevel
  readonly message: string
  readonly data: Record<string, unknown> | undefined
}

type LogMethod = (message: string, data?: Record<string, unknown>) => string

export type Logger = { readonly [level in LogLevel]: LogMethod }

// entries hold plain data: errors serialized; functions and already seen objects (cycles) dropped
function toPlainData(data: Record<string, unknown>): Record<string, unknown> {
  const seen = new WeakSet<object>()
  return JSON.parse(
    JSON.stringify(data, (_key, value: unknown) => {
      if (value instanceof Error) return { ...value, name: value.name, message: value.message, stack: value.stack }
      if (typeof value === 'object' && value !== null) {
        if (seen.has(value)) return undefined
        seen.add(value)
      }
      return value
    })
  ) as Record<string, unknown>
}

export class Logs {
  readonly #entries: LogEntry[] = []
  readonly #file: string
  #pending: Promise<void> = Promise.resolve()
  #counter = 0

  constructor(file: string) {
    this.#file = file
  }

  getLogger(namespace: string): Logger {
    const method =
      (level: LogLevel): LogMethod =>
      (message, data) =>
        this.#add(namespace, level, message, data)
    return {
      debug: method('debug'),
      info: method('info'),
      notice: method('notice'),
      warning: method('warning'),
      error: method('error'),
    }
  }

  entries(namespace?: string): LogEntry[] {
    return this.#entries.filter(entry => namespace === undefined || entry.namespace === namespace)
  }

  flush(): Promise<void> {
    return this.#pending
  }

  #add(namespace: string, level: LogLevel, message: string, data: Record<string, unknown> | undefined): string {
    const time = Date.now()
    const id = `${time}:${(this.#counter++).toString(36)}`
    const entry: LogEntry = { id, time, namespace, level, message, data: data === undefined ? undefined : toPlainData(data) }
    this.#entries.push(entry)
    const line = JSON.stringify(entry) + '\n'
    const file = this.#file
    this.#pending = this.#pending.then(async () => {
      await mkdir(dirname(file), { recursive: true })
      await appendFile(file, line)
    }).catch(() => {})
    return id
  }
}
