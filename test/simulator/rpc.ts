/**
 * Answers XAPI calls: sessions, `system.listMethods`, events, `Async.*` through tasks, the
 * class-specific methods and the generic accessors. Records every call for tests.
 */
import { randomUUID } from 'node:crypto'

import type { ArmedFaults } from './faults.js'
import { genericCall, genericMethodNames } from './generic-methods.js'
import { CLASSES } from './classes/index.js'
import { METHODS, type MethodContext, type MethodSpec } from './methods.js'
import type { ObjectStore } from './object-store.js'
import { XapiFault } from './xapi-fault.js'

export interface CallRecord {
  readonly method: string
  /** Parameters after the session (the password of a login is masked). */
  readonly params: readonly unknown[]
  /**
   * Error code answered, if any (for `Async.*`: only a synchronous refusal; the task carries the
   * rest). HTTP handlers are logged as `export_raw_vdi` / `import_raw_vdi` with their query.
   */
  readonly error?: string
}

export interface Credentials {
  readonly user: string
  readonly password: string
}

/** Methods that hold their object (first argument) while they run, and the operation they hold it for. */
const LOCKING_OPERATIONS: Readonly<Record<string, string>> = {
  'VM.snapshot': 'snapshot',
  'VM.destroy': 'destroy',
  'VM.start': 'start',
  'VM.clean_shutdown': 'clean_shutdown',
  'VM.hard_shutdown': 'hard_shutdown',
  'VDI.destroy': 'destroy',
  'VDI.snapshot': 'snapshot',
  'VDI.resize': 'resize',
}

/**
 * Puts `operation` in the object's `current_operations` under `task`; OTHER_OPERATION_IN_PROGRESS
 * if another one is there. Resolves the function that ends it.
 */
export function holdOperation(store: ObjectStore, cls: string, ref: string, task: string, operation: string): () => void {
  const current = store.get(cls, ref).current_operations as Record<string, string>
  const [other] = Object.values(current)
  if (other !== undefined) throw new XapiFault('OTHER_OPERATION_IN_PROGRESS', [cls, ref, other])
  store.edit<Record<string, string>>(cls, ref, 'current_operations', ops => ({ ...ops, [task]: operation }))
  return () => {
    if (!store.has(ref)) return
    store.edit<Record<string, string>>(cls, ref, 'current_operations', ({ [task]: _done, ...rest }) => rest)
  }
}

/** Longest `event.from` wait granted, in seconds (clients ask for ~60). */
const MAX_EVENT_WAIT_S = 60

export class RpcDispatcher {
  readonly #store: ObjectStore
  readonly #ctx: MethodContext
  readonly #faults: ArmedFaults
  readonly #credentials: Credentials
  readonly #sessions = new Set<string>()
  readonly #calls: CallRecord[] = []
  readonly #closing = new AbortController()
  #sessionEpoch = new AbortController()

  constructor(store: ObjectStore, ctx: MethodContext, faults: ArmedFaults, credentials: Credentials) {
    this.#store = store
    this.#ctx = ctx
    this.#faults = faults
    this.#credentials = credentials
  }

  get calls(): readonly CallRecord[] {
    return this.#calls
  }

  /** Records a call that did not come through JSON-RPC (the HTTP disk handlers). */
  note(call: CallRecord): void {
    this.#calls.push(call)
  }

  clearCalls(): void {
    this.#calls.length = 0
  }

  isValidSession(session: unknown): boolean {
    return typeof session === 'string' && this.#sessions.has(session)
  }

  /** Forgets every session: the next call of each client answers SESSION_INVALID. */
  loseSessions(): void {
    // pending polls answer SESSION_INVALID at their next wake-up, as after a toolstack restart
    this.#sessions.clear()
  }

  #wakePollers(): void {
    this.#sessionEpoch.abort()
    this.#sessionEpoch = new AbortController()
  }

  /** Ends pending long polls (before the server closes). */
  close(): void {
    this.#closing.abort()
  }

  async call(method: string, params: readonly unknown[]): Promise<unknown> {
    const logged = method === 'session.login_with_password' ? [params[0], '******', ...params.slice(2)] : params.slice(1)
    try {
      const result = await this.#dispatch(method, params)
      this.#calls.push({ method, params: logged })
      return result
    } catch (error) {
      this.#calls.push({ method, params: logged, error: error instanceof XapiFault ? error.code : String(error) })
      throw error
    }
  }

  async #dispatch(method: string, params: readonly unknown[]): Promise<unknown> {
    if (method === 'session.login_with_password') return this.#login(params)
    if (method === 'system.listMethods') return this.#listMethods()

    const [session, ...args] = params
    if (!this.isValidSession(session)) throw new XapiFault('SESSION_INVALID', [session])
    if (method === 'session.logout') {
      this.#sessions.delete(session as string)
      this.#wakePollers()
      return ''
    }
    if (method === 'event.from') {
      if (this.#closing.signal.aborted) throw new XapiFault('SESSION_INVALID', [session])
      return this.#eventFrom(session as string, args)
    }
    if (method === 'event.inject') return this.#eventInject(args)

    if (method.startsWith('Async.')) {
      const inner = method.slice('Async.'.length)
      this.#resolve(inner).validate?.(this.#ctx, args)
      const fault = this.#faults.takeFailure(method)
      const task = this.#ctx.tasks.create(method)
      setImmediate(() => {
        Promise.resolve()
          .then(() => {
            if (fault !== undefined) throw fault
            return this.#locked(inner, args, task, () => this.#resolve(inner).run({ ...this.#ctx, session: session as string }, args))
          })
          .then(
            result => this.#ctx.tasks.succeed(task, result),
            error => this.#ctx.tasks.fail(task, error)
          )
      })
      return task
    }
    const spec = this.#resolve(method)
    spec.validate?.(this.#ctx, args)
    const fault = this.#faults.takeFailure(method)
    if (fault !== undefined) throw fault
    return this.#locked(method, args, `OpaqueRef:${randomUUID()}`, () => spec.run({ ...this.#ctx, session: session as string }, args))
  }

  /**
   * The pool serialises the operations on one object: while one runs it is in the object's
   * `current_operations`, and a conflicting call answers OTHER_OPERATION_IN_PROGRESS.
   */
  async #locked(method: string, args: readonly unknown[], task: string, run: () => unknown): Promise<unknown> {
    const operation = LOCKING_OPERATIONS[method]
    const target = args[0]
    if (operation === undefined || typeof target !== 'string' || !this.#store.has(target)) return run()
    const cls = method.slice(0, method.indexOf('.'))
    const release = holdOperation(this.#store, cls, target, task, operation)
    try {
      return await run()
    } finally {
      release()
    }
  }

  /** Whether this pool's version has the class (`VTPM` only from 8.3). */
  #serves(cls: string): boolean {
    return !this.#ctx.profile.absentClasses.some(absent => absent.toLowerCase() === cls.toLowerCase())
  }

  #resolve(method: string): MethodSpec {
    const dot = method.indexOf('.')
    const cls = method.slice(0, dot)
    const op = method.slice(dot + 1)
    if (this.#ctx.profile.absentMethods.includes(method) || (dot > 0 && !this.#serves(cls))) {
      throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [method])
    }
    const specific = METHODS[method]
    if (specific !== undefined) return specific
    if (dot > 0 && CLASSES.has(cls)) {
      return {
        run: (_ctx, args) => {
          const answer = genericCall(this.#store, cls, op, args)
          if (answer === undefined) throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [method])
          return answer.value
        },
      }
    }
    throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [method])
  }

  #login([user, password]: readonly unknown[]): string {
    if (user !== this.#credentials.user || password !== this.#credentials.password) {
      throw new XapiFault('SESSION_AUTHENTICATION_FAILED', [user, 'Authentication failure'])
    }
    const session = `OpaqueRef:${randomUUID()}`
    this.#sessions.add(session)
    return session
  }

  #listMethods(): string[] {
    const names = new Set([
      'session.login_with_password',
      'session.logout',
      'system.listMethods',
      'event.from',
      'event.inject',
      ...genericMethodNames(this.#store, cls => this.#serves(cls)),
    ])
    for (const name of Object.keys(METHODS)) {
      if (this.#serves(name.slice(0, name.indexOf('.')))) names.add(name).add(`Async.${name}`)
    }
    for (const name of this.#ctx.profile.absentMethods) {
      names.delete(name)
      names.delete(`Async.${name}`)
    }
    return [...names]
  }

  #eventInject([cls, ref]: readonly unknown[]): string {
    return this.#store.touch(String(cls), String(ref))
  }

  async #eventFrom(session: string, [classes, token, timeout]: readonly unknown[]): Promise<unknown> {
    if (!Array.isArray(classes)) throw new XapiFault('FIELD_TYPE_ERROR', ['classes'])
    const wanted = classes.map(String)
    const waitMs = Math.min(Number(timeout) || 0, MAX_EVENT_WAIT_S) * 1000
    const deadline = Date.now() + waitMs
    const epoch = this.#sessionEpoch.signal
    for (;;) {
      if (!this.#sessions.has(session)) throw new XapiFault('SESSION_INVALID', [session])
      const answer = this.#store.eventsSince(String(token ?? ''), wanted)
      const remaining = deadline - Date.now()
      if (answer.events.length > 0 || remaining <= 0 || this.#closing.signal.aborted || epoch.aborted) {
        return {
          events: answer.events.map(({ id, ...event }) => ({ id: String(id), ...event })),
          valid_ref_counts: this.#store.validRefCounts(wanted),
          token: answer.token,
        }
      }
      await this.#store.waitForEvent(remaining, AbortSignal.any([this.#closing.signal, epoch]))
    }
  }
}
