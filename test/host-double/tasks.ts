/**
 * `xo.tasks`: creates root tasks (`create(properties)`) whose events are folded into a log
 * tree, the shape XO's REST API shows at `/rest/v0/tasks/<id>`:
 *   { id, start, end?, updatedAt, status, properties: { name, type, objectId, progress, ... },
 *     infos?, warnings?, result?, abortionRequestedAt?, tasks?: <children, same shape> }
 */
import { Task } from './task.js'
import type { TaskEvent, TaskStatus } from './task.js'
import { noSuchObject } from './api-errors.js'
import { serializeError } from './serialize-error.js'

export interface TaskMessage {
  readonly message: string
  readonly data: unknown
}

export interface TaskLog {
  readonly id: string
  readonly start: number
  end?: number
  updatedAt: number
  status: TaskStatus
  readonly properties: Record<string, unknown>
  infos?: TaskMessage[]
  warnings?: TaskMessage[]
  result?: unknown
  abortionRequestedAt?: number
  tasks?: TaskLog[]
}

export interface CreateTaskProperties {
  readonly name: string
  readonly type?: string
  readonly objectId?: string
  readonly [property: string]: unknown
}

function toJson(value: unknown): unknown {
  if (value instanceof Error) return serializeError(value)
  if (value === undefined) return undefined
  try {
    return JSON.parse(JSON.stringify(value)) as unknown
  } catch {
    return String(value)
  }
}

export class Tasks {
  /** root task logs by id, oldest first */
  readonly #roots = new Map<string, TaskLog>()
  /** every log (roots and subtasks) by id */
  readonly #all = new Map<string, TaskLog>()
  /** running root tasks, to abort them */
  readonly #running = new Map<string, Task>()
  readonly #listeners = new Set<(log: TaskLog, event: TaskEvent) => void>()

  /** a new root task; `clearLogOnSuccess` drops its log when it succeeds (API-call tasks) */
  create(properties: CreateTaskProperties, { clearLogOnSuccess = false }: { clearLogOnSuccess?: boolean } = {}): Task {
    let id: string
    do id = Math.random().toString(36).slice(2)
    while (this.#all.has(id))
    const task = new Task({
      properties: { ...properties },
      onProgress: event => this.#onEvent(event, id, clearLogOnSuccess),
    })
    task.id = id
    this.#running.set(id, task)
    return task
  }

  /** a copy of a task's log (root or subtask) */
  get(id: string): TaskLog {
    const log = this.#all.get(id)
    if (log === undefined) throw noSuchObject(id, 'task')
    return structuredClone(log)
  }

  /** copies of the root task logs, oldest first */
  list(filter?: (log: TaskLog) => boolean): TaskLog[] {
    const logs = [...this.#roots.values()].map(log => structuredClone(log))
    return filter === undefined ? logs : logs.filter(filter)
  }

  abort(id: string, reason?: unknown): void {
    const task = this.#running.get(id)
    if (task === undefined) throw noSuchObject(id, 'task')
    task.abort(reason)
  }

  deleteLog(id: string): void {
    const log = this.#roots.get(id)
    if (log === undefined) throw noSuchObject(id, 'task')
    this.#roots.delete(id)
    this.#forget(log)
  }

  /** called on every event of every task; returns the unsubscriber */
  watch(listener: (log: TaskLog, event: TaskEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  #forget(log: TaskLog): void {
    this.#all.delete(log.id)
    log.tasks?.forEach(child => this.#forget(child))
  }

  #onEvent(event: TaskEvent, rootId: string, clearLogOnSuccess: boolean): void {
    let log: TaskLog | undefined
    if (event.type === 'start') {
      log = { id: event.id, start: event.timestamp, updatedAt: event.timestamp, status: 'pending', properties: { ...(toJson(event.properties) as object) } }
      this.#all.set(log.id, log)
      const parent = event.parentId === undefined ? undefined : this.#all.get(event.parentId)
      if (parent === undefined) this.#roots.set(log.id, log)
      else (parent.tasks ??= []).push(log)
    } else {
      log = this.#all.get(event.id)
      if (log === undefined) return
      log.updatedAt = event.timestamp
      switch (event.type) {
        case 'end':
          log.end = event.timestamp
          log.status = event.status
          log.result = toJson(event.result)
          break
        case 'info':
          ;(log.infos ??= []).push({ message: event.message, data: toJson(event.data) })
          break
        case 'warning':
          ;(log.warnings ??= []).push({ message: event.message, data: toJson(event.data) })
          break
        case 'property':
          log.properties[event.name] = toJson(event.value)
          break
        case 'abortionRequested':
          log.abortionRequestedAt = event.timestamp
          break
      }
    }
    for (const listener of this.#listeners) listener(log, event)
    if (event.type === 'end' && event.id === rootId) {
      this.#running.delete(rootId)
      if (clearLogOnSuccess && event.status === 'success') this.deleteLog(rootId)
    }
  }
}
