/**
 * The lifecycle's `RunReporter` on XO tasks: the run is a root task (`xo.tasks.create`), each
 * `child()` a subtask (a VM, a disk transfer, a merge) whose `progress` property XO shows live;
 * `info`/`warning` become the task's log entries. Subtasks are created the way `@vates/task`
 * nests them: constructed while their parent task runs. Task calls are queued per task, so the
 * reporter stays synchronous for the lifecycle and a failing task log never fails a run.
 */
import type { RunReporter } from '../lifecycle/job.js'
import { redactError, redactText, redactValue } from './redact.js'
import type { XoTask, XoTaskClass, XoTasks } from './xo.js'

type EndResult = { status: 'success' | 'failure' | 'skipped'; error?: Error; data?: Record<string, unknown> }

function noop(): void {}

function isTaskClass(value: unknown): value is XoTaskClass {
  return typeof value === 'function'
}

/** a subtask of `parent`: `@vates/task` nests a task constructed while another one runs */
async function createSubtask(parent: XoTask, properties: Record<string, unknown>): Promise<XoTask> {
  const TaskClass: unknown = parent.constructor
  if (!isTaskClass(TaskClass)) throw new TypeError('a task without a Task class')
  let subtask: XoTask | undefined
  await parent.runInside(() => {
    subtask = new TaskClass({ properties })
  })
  if (subtask === undefined) throw new Error('the subtask was not created')
  await subtask.runInside(noop)
  return subtask
}

export class TaskReporter implements RunReporter {
  readonly #task: Promise<XoTask | undefined>
  #abortSignal: Promise<AbortSignal | undefined> = Promise.resolve(undefined)
  #queue: Promise<unknown>
  #lastProgress = -1
  #ended = false

  /** a root task for a run */
  static create(tasks: Pick<XoTasks, 'create'>, properties: { name: string; type?: string; objectId?: string; [key: string]: unknown }): TaskReporter {
    let signal: AbortSignal | undefined
    const reporter = new TaskReporter(async () => {
      const task = tasks.create(properties)
      const TaskClass: unknown = task.constructor
      await task.runInside(() => {
        // the signal of the task running now: this one
        if (isTaskClass(TaskClass)) signal = TaskClass.abortSignal
      })
      return task
    })
    reporter.#abortSignal = reporter.#task.then(() => signal)
    return reporter
  }

  private constructor(createTask: () => Promise<XoTask>) {
    this.#task = createTask().catch(() => undefined)
    this.#queue = this.#task
  }

  #enqueue(operation: (task: XoTask) => unknown): void {
    this.#queue = this.#queue.then(async () => {
      const task = await this.#task
      if (task !== undefined) await operation(task)
    }).catch(noop)
  }

  /** resolves once every queued task update is done */
  async settled(): Promise<void> {
    let queue
    do {
      queue = this.#queue
      await queue
    } while (queue !== this.#queue)
  }

  /** aborted when the task is aborted in XO (root tasks only) */
  abortSignal(): Promise<AbortSignal | undefined> {
    return this.#abortSignal
  }

  /** the task id, once the task exists */
  async id(): Promise<string | undefined> {
    return (await this.#task)?.id
  }

  info(message: string, data?: Record<string, unknown>): void {
    this.#enqueue(task => task.info(redactText(message), redactValue(data)))
  }

  warning(message: string, data?: Record<string, unknown>): void {
    this.#enqueue(task => task.warning(redactText(message), redactValue(data)))
  }

  child(name: string, data?: Record<string, unknown>): TaskReporter {
    let created: (task: XoTask | undefined) => void = noop
    const child = new TaskReporter(
      () =>
        new Promise<XoTask>((resolve, reject) => {
          created = task => (task === undefined ? reject(new Error('no parent task')) : resolve(task))
        })
    )
    // created on the parent's queue: the parent runs only for the instant of the construction
    this.#enqueue(async parent => {
      // the data are the task's own properties: XO's backup logs read them there (`type`, `id`...)
      const properties = data === undefined ? {} : (redactValue(data) as Record<string, unknown>)
      created(await createSubtask(parent, { ...properties, name: redactText(name) }))
    })
    this.#queue.then(() => created(undefined), noop)
    return child
  }

  progress(percent: number): void {
    const rounded = Math.max(0, Math.min(100, Math.floor(percent)))
    if (rounded === this.#lastProgress) return
    this.#lastProgress = rounded
    this.#enqueue(task => task.set('progress', rounded))
  }

  end(result?: EndResult): void {
    if (this.#ended) return
    this.#ended = true
    this.#enqueue(task => {
      if (result?.status === 'failure') {
        task.failure(redactError(result.error ?? new Error('failed')))
      } else {
        if (this.#lastProgress !== 100 && result?.status !== 'skipped') task.set('progress', 100)
        task.success(redactValue({ status: result?.status ?? 'success', ...result?.data }))
      }
    })
  }
}
