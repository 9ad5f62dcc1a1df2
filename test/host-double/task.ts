/**
 * A task with the instance and static API of `@vates/task` (the package xo-server's
 * `xo.tasks.create()` returns instances of):
 *
 *   task.id (settable once, before it is read), task.status ('pending' | 'success' | 'failure'),
 *   task.run(fn), task.runInside(fn), task.start(), task.success(result), task.failure(error),
 *   task.info(message, data), task.warning(message, data), task.set(name, value),
 *   task.abort(reason), task.wrap(fn), task.wrapInside(fn);
 *   static Task.run([opts], fn), Task.info/warning/set (on the current task), Task.abortSignal.
 *
 * A task created with `onProgress` is a root; one created without it, while another task runs,
 * is a subtask of that one (same `onProgress`, `parentId` in its start event, aborted with it).
 * Events: start { properties, parentId? }, end { status, result }, info/warning { message, data },
 * property { name, value }, abortionRequested { reason }; each with id, timestamp, type.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

export type TaskStatus = 'pending' | 'success' | 'failure'

export type TaskEvent =
  | { readonly type: 'start'; readonly id: string; readonly timestamp: number; readonly properties?: Record<string, unknown>; readonly parentId?: string }
  | { readonly type: 'end'; readonly id: string; readonly timestamp: number; readonly status: 'success' | 'failure'; readonly result: unknown }
  | { readonly type: 'info' | 'warning'; readonly id: string; readonly timestamp: number; readonly message: string; readonly data: unknown }
  | { readonly type: 'property'; readonly id: string; readonly timestamp: number; readonly name: string; readonly value: unknown }
  | { readonly type: 'abortionRequested'; readonly id: string; readonly timestamp: number; readonly reason: unknown }

export type TaskEventPayload = TaskEvent extends infer E ? (E extends TaskEvent ? Omit<E, 'id' | 'timestamp'> : never) : never

export interface TaskOptions {
  /** sent with the start event (`name`, `type`, `objectId`, ...) */
  readonly properties?: Record<string, unknown>
  /** makes a detached (root) task; without it, a task created inside a running task is its subtask */
  readonly onProgress?: (event: TaskEvent) => void
}

const current = new AsyncLocalStorage<Task>()

function ended(): never {
  throw new Error('task has already ended')
}

function noop(): void {}

export class Task {
  static get abortSignal(): AbortSignal | undefined {
    const task = current.getStore()
    return task === undefined ? undefined : task.#abortController.signal
  }

  /** the task running the caller, if any */
  static get current(): Task | undefined {
    return current.getStore()
  }

  static run<T>(fn: () => T | Promise<T>): Promise<T>
  static run<T>(opts: TaskOptions, fn: () => T | Promise<T>): Promise<T>
  static run<T>(optsOrFn: TaskOptions | (() => T | Promise<T>), maybeFn?: () => T | Promise<T>): Promise<T> {
    if (typeof optsOrFn === 'function') return new Task().run(optsOrFn)
    if (maybeFn === undefined) throw new TypeError('Task.run: missing function')
    return new Task(optsOrFn).run(maybeFn)
  }

  static info(message: string, data?: unknown): void {
    current.getStore()?.info(message, data)
  }

  static warning(message: string, data?: unknown): void {
    current.getStore()?.warning(message, data)
  }

  static set(name: string, value: unknown): void {
    current.getStore()?.set(name, value)
  }

  readonly #abortController = new AbortController()
  #onProgress: (event: TaskEvent) => void
  #startData: { properties?: Record<string, unknown>; parentId?: string } | undefined
  #status: TaskStatus = 'pending'
  #running = false
  #id: string | undefined
  #idObserved = false

  constructor({ properties, onProgress }: TaskOptions = {}) {
    this.#startData = { properties }
    if (onProgress !== undefined) {
      this.#onProgress = onProgress
    } else {
      const parent = current.getStore()
      if (parent === undefined) {
        this.#onProgress = noop
      } else {
        const parentSignal = parent.#abortController.signal
        parentSignal.addEventListener('abort', () => this.#abortController.abort(parentSignal.reason), { once: true })
        this.#onProgress = parent.#onProgress
        this.#startData.parentId = parent.id
      }
    }
    const { signal } = this.#abortController
    signal.addEventListener(
      'abort',
      () => {
        if (this.#status !== 'pending') return
        this.#maybeStart()
        this.#emit({ type: 'abortionRequested', reason: signal.reason })
        if (!this.#running) this.#end('failure', signal.reason)
      },
      { once: true }
    )
  }

  /** random unless set before first read; settable once */
  get id(): string {
    this.#idObserved = true
    return (this.#id ??= Math.random().toString(36).slice(2))
  }

  set id(value: string) {
    if (this.#idObserved || this.#id !== undefined) throw new Error('task id can only be set once, before it is read')
    this.#id = value
  }

  get status(): TaskStatus {
    return this.#status
  }

  get signal(): AbortSignal {
    return this.#abortController.signal
  }

  abort(reason?: unknown): void {
    this.#abortController.abort(reason)
  }

  start(): void {
    const startData = this.#startData
    if (startData === undefined) throw new Error('task has already started')
    this.#startData = undefined
    this.#emit({ type: 'start', ...startData })
  }

  success(result?: unknown): void {
    this.#end('success', result)
  }

  failure(error: unknown): void {
    this.#end('failure', error)
  }

  info(message: string, data?: unknown): void {
    this.#emit({ type: 'info', message, data })
  }

  warning(message: string, data?: unknown): void {
    this.#assertPending()
    this.#emit({ type: 'warning', message, data })
  }

  /** attaches a property (the latest value wins), e.g. `set('progress', 42)` */
  set(name: string, value: unknown): void {
    this.#assertPending()
    this.#emit({ type: 'property', name, value })
  }

  /** runs `fn` inside this task; a rejection fails the task, a resolution leaves it pending */
  async runInside<T>(fn: () => T | Promise<T>): Promise<T> {
    this.#assertPending()
    if (this.#running) throw new Error('task is already running')
    this.#running = true
    this.#maybeStart()
    try {
      const result = await current.run(this, fn)
      this.#running = false
      return result
    } catch (error) {
      this.#running = false
      if (this.#status === 'pending') this.#end('failure', error)
      throw error
    }
  }

  /** runs `fn` inside this task and ends it: success with the result, or failure with the error */
  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    const result = await this.runInside(fn)
    if (this.#status === 'pending') this.#end('success', result)
    return result
  }

  wrap<A extends unknown[], T>(fn: (...args: A) => T | Promise<T>): (...args: A) => Promise<T> {
    return (...args) => this.run(() => fn(...args))
  }

  wrapInside<A extends unknown[], T>(fn: (...args: A) => T | Promise<T>): (...args: A) => Promise<T> {
    return (...args) => this.runInside(() => fn(...args))
  }

  #assertPending(): void {
    if (this.#status !== 'pending') throw new Error(`task is not pending (${this.#status})`)
  }

  #maybeStart(): void {
    if (this.#startData !== undefined) this.start()
  }

  #end(status: 'success' | 'failure', result: unknown): void {
    this.#assertPending()
    if (this.#running) throw new Error('cannot end a running task')
    this.#emit({ type: 'end', status, result })
    this.#onProgress = ended
    this.#status = status
  }

  #emit(payload: TaskEventPayload): void {
    if (this.#startData !== undefined && payload.type !== 'start') throw new Error('task has not started yet')
    this.#onProgress({ ...payload, id: this.id, timestamp: Date.now() } as TaskEvent)
  }
}
