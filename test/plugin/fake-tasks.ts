/**
 * A small task double with `@vates/task`'s nesting rule: a task constructed while another one
 * runs (inside `runInside`) is its subtask. Every event lands in one list, to assert the tree.
 */
import { AsyncLocalStorage } from 'node:async_hooks'

import type { XoTask, XoTasks } from '../../src/plugin/xo.js'

export interface FakeTaskEvent {
  readonly task: string
  readonly type: 'start' | 'info' | 'warning' | 'property' | 'end'
  readonly parent?: string
  readonly properties?: Record<string, unknown>
  readonly message?: string
  readonly data?: unknown
  readonly name?: string
  readonly value?: unknown
  readonly status?: 'success' | 'failure'
  readonly result?: unknown
}

const running = new AsyncLocalStorage<FakeTask>()
let counter = 0

export class FakeTask implements XoTask {
  static events: FakeTaskEvent[] = []

  static get abortSignal(): AbortSignal | undefined {
    return running.getStore()?.controller.signal
  }

  readonly controller = new AbortController()

  readonly id = `task-${++counter}`
  readonly parent: string | undefined
  readonly properties: Record<string, unknown>
  #started = false
  #running = false
  status: 'pending' | 'success' | 'failure' = 'pending'

  constructor({ properties }: { properties: Record<string, unknown> }) {
    this.properties = properties
    this.parent = running.getStore()?.id
  }

  #emit(event: Omit<FakeTaskEvent, 'task'>): void {
    if (this.status !== 'pending') throw new Error(`event ${event.type} on an ended task`)
    if (!this.#started) throw new Error(`event ${event.type} before start`)
    FakeTask.events.push({ task: this.id, ...event })
  }

  async runInside<T>(fn: () => T): Promise<T> {
    if (this.#running) throw new Error('task is already running')
    if (!this.#started) {
      this.#started = true
      this.#emit({ type: 'start', properties: this.properties, ...(this.parent === undefined ? {} : { parent: this.parent }) })
    }
    this.#running = true
    try {
      return await running.run(this, fn)
    } finally {
      this.#running = false
    }
  }

  info(message: string, data?: unknown): void {
    this.#emit({ type: 'info', message, data })
  }

  warning(message: string, data?: unknown): void {
    this.#emit({ type: 'warning', message, data })
  }

  set(name: string, value: unknown): void {
    this.#emit({ type: 'property', name, value })
  }

  success(result?: unknown): void {
    this.#emit({ type: 'end', status: 'success', result })
    this.status = 'success'
  }

  failure(error: unknown): void {
    this.#emit({ type: 'end', status: 'failure', result: error })
    this.status = 'failure'
  }
}

export const fakeTasks: XoTasks = {
  create: properties => new FakeTask({ properties }),
}

export interface TaskNode {
  readonly id: string
  readonly name: unknown
  readonly parent?: string
  readonly infos: string[]
  readonly warnings: string[]
  readonly progress: number[]
  status?: 'success' | 'failure'
  result?: unknown
  readonly children: TaskNode[]
}

/** the task trees the events describe */
export function taskTrees(events: readonly FakeTaskEvent[]): TaskNode[] {
  const nodes = new Map<string, TaskNode>()
  const roots: TaskNode[] = []
  for (const event of events) {
    if (event.type === 'start') {
      const node: TaskNode = {
        id: event.task,
        name: event.properties?.['name'],
        ...(event.parent === undefined ? {} : { parent: event.parent }),
        infos: [],
        warnings: [],
        progress: [],
        children: [],
      }
      nodes.set(event.task, node)
      const parent = event.parent === undefined ? undefined : nodes.get(event.parent)
      if (parent === undefined) roots.push(node)
      else parent.children.push(node)
      continue
    }
    const node = nodes.get(event.task)
    if (node === undefined) throw new Error(`event of unknown task ${event.task}`)
    if (event.type === 'info' && event.message !== undefined) node.infos.push(event.message)
    if (event.type === 'warning' && event.message !== undefined) node.warnings.push(event.message)
    if (event.type === 'property' && event.name === 'progress' && typeof event.value === 'number') node.progress.push(event.value)
    if (event.type === 'end') {
      if (event.status !== undefined) node.status = event.status
      node.result = event.result
    }
  }
  return roots
}
