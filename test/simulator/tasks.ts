/** Task objects: created pending, settled by the operation they follow, observed through events. */
import type { ObjectStore } from './object-store.js'
import { xapiDate } from './xapi-date.js'
import { XapiFault } from './xapi-fault.js'
import { toXmlRpcValue } from './xml-rpc-value.js'

/**
 * Pending tasks a pool takes before it answers TOO_MANY_PENDING_TASKS to anything that would
 * create one (XAPI bounds its pending tasks).
 */
export const MAX_PENDING_TASKS = 200

export class Tasks {
  readonly #store: ObjectStore
  readonly #host: () => string

  constructor(store: ObjectStore, host: () => string) {
    this.#store = store
    this.#host = host
  }

  get pendingCount(): number {
    return this.#store.refs('task').filter(ref => this.#store.get('task', ref).status === 'pending').length
  }

  /** A new pending task; TOO_MANY_PENDING_TASKS when the pool holds too many already. */
  create(nameLabel: string, nameDescription = ''): string {
    if (this.pendingCount >= MAX_PENDING_TASKS) throw new XapiFault('TOO_MANY_PENDING_TASKS', [])
    return this.#createPending(nameLabel, nameDescription)
  }

  /**
   * Fills the pool with other clients' pending tasks up to the limit (long exports of another
   * tool); resolves the function that ends them.
   */
  occupy(): () => void {
    const refs: string[] = []
    while (this.pendingCount < MAX_PENDING_TASKS) refs.push(this.#createPending('Exporting content of VDI', 'another client'))
    return () => {
      for (const ref of refs) if (this.#store.has(ref)) this.succeed(ref, '')
    }
  }

  #createPending(nameLabel: string, nameDescription: string): string {
    return this.#store.create('task', {
      name_label: nameLabel,
      name_description: nameDescription,
      created: xapiDate(),
      resident_on: this.#host(),
      status: 'pending',
    })
  }

  /** A pending task by ref, or undefined when it is unknown or already settled. */
  pending(ref: string | undefined): string | undefined {
    if (ref === undefined || this.#store.resolve('task', ref) === undefined) return undefined
    return this.#store.get('task', ref).status === 'pending' ? ref : undefined
  }

  progress(ref: string, progress: number): void {
    if (this.pending(ref) !== undefined) this.#store.update('task', ref, { progress })
  }

  succeed(ref: string, result?: unknown): void {
    if (this.pending(ref) === undefined) return
    this.#store.update('task', ref, {
      status: 'success',
      progress: 1,
      finished: xapiDate(),
      result: toXmlRpcValue(result),
    })
  }

  fail(ref: string, error: unknown): void {
    if (this.pending(ref) === undefined) return
    const fault = error instanceof XapiFault ? error : new XapiFault('INTERNAL_ERROR', [String(error)])
    this.#store.update('task', ref, {
      status: 'failure',
      progress: 1,
      finished: xapiDate(),
      error_info: [fault.code, ...fault.params],
    })
  }

  cancel(ref: string): void {
    if (this.pending(ref) === undefined) return
    this.#store.update('task', ref, { status: 'cancelled', finished: xapiDate() })
  }

  destroy(ref: string): void {
    this.#store.destroy('task', ref)
  }
}
