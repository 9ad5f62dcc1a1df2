/**
 * The hook runner: runs the steps of `steps.ts` in order on a context. Each step runs its action,
 * then the hooks registered on it, in registration order.
 *
 * One error rule:
 * - the first failure (of an action or a hook) stops the steps; it is wrapped in a `BackupError`
 *   naming the step and the hook, keeping the code of a `BackupError` cause (`STEP_FAILED`
 *   otherwise, `CANCELLED` once the run's signal is aborted);
 * - `onError` observers are then told; they observe only: what they return or throw changes
 *   nothing;
 * - `cleanup` (its action and hooks) always runs, and is told the failure, if any. A cleanup
 *   failure is reported to the observers; it becomes the run's error only if the steps succeeded.
 */
import { BackupError } from '../errors.js'
import type { ErrorContext } from '../errors.js'
import { isStep, STEPS } from './steps.js'
import type { Step } from './steps.js'

/** an action or a hook; `failure` is only ever given to `cleanup` */
export type StepFunction<C> = (ctx: C, failure?: BackupError) => Promise<void> | void
export type StepActions<C> = { readonly [S in Step]: StepFunction<C> }
export type ErrorObserver<C> = (ctx: C, error: BackupError) => Promise<void> | void

export interface RunScope {
  /** cancels the run: no step starts once it is aborted */
  readonly signal?: AbortSignal
  /** what the errors carry besides the step and the hook (the VM...) */
  readonly errorContext?: ErrorContext
}

interface RegisteredHook<C> {
  readonly name: string
  readonly fn: StepFunction<C>
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    return error.message
  }
  return error === undefined ? 'rejected without a value' : String(error)
}

export function wrapStepError(error: unknown, where: { step: Step; hook?: string }, scope: RunScope): BackupError {
  const place = where.hook === undefined ? where.step : `${where.step} (hook ${where.hook})`
  const context: ErrorContext = {
    ...scope.errorContext,
    ...(error instanceof BackupError ? error.context : {}),
    step: where.step,
    ...(where.hook === undefined ? {} : { hook: where.hook }),
  }
  const code = error instanceof BackupError ? error.code : scope.signal?.aborted === true ? 'CANCELLED' : 'STEP_FAILED'
  return new BackupError(code, `${place}: ${describe(error)}`, context, { cause: error })
}

export class Lifecycle<C> {
  readonly #hooks = new Map<Step, RegisteredHook<C>[]>()
  readonly #observers: ErrorObserver<C>[] = []

  /** registers `fn` to run after the action of `step`; throws `UNKNOWN_STEP` for a name not in `STEPS` */
  addHook(step: string, name: string, fn: StepFunction<C>): this {
    if (!isStep(step)) {
      throw new BackupError('UNKNOWN_STEP', `cannot register hook "${name}" on unknown step "${step}" (steps: ${STEPS.join(', ')})`, {
        step,
        hook: name,
      })
    }
    const hooks = this.#hooks.get(step) ?? []
    hooks.push({ name, fn })
    this.#hooks.set(step, hooks)
    return this
  }

  onError(observer: ErrorObserver<C>): this {
    this.#observers.push(observer)
    return this
  }

  /** the names of the hooks of `step`, in the order they run */
  hooksOf(step: Step): readonly string[] {
    return (this.#hooks.get(step) ?? []).map(hook => hook.name)
  }

  /** runs every step on `ctx`; rejects with the first failure, after `cleanup` */
  async run(ctx: C, actions: StepActions<C>, scope: RunScope = {}): Promise<void> {
    let failure: BackupError | undefined
    for (const step of STEPS) {
      if (step === 'cleanup') {
        break
      }
      failure = await this.#runStep(ctx, step, actions[step], scope)
      if (failure !== undefined) {
        await this.#notify(ctx, failure)
        break
      }
    }

    const cleanupFailure = await this.#runCleanup(ctx, actions.cleanup, failure, scope)
    if (failure !== undefined) {
      throw failure
    }
    if (cleanupFailure !== undefined) {
      throw cleanupFailure
    }
  }

  async #runStep(ctx: C, step: Step, action: StepFunction<C>, scope: RunScope): Promise<BackupError | undefined> {
    if (scope.signal?.aborted === true) {
      return wrapStepError(new BackupError('CANCELLED', 'the run was cancelled'), { step }, scope)
    }
    try {
      await action(ctx)
    } catch (error) {
      return wrapStepError(error, { step }, scope)
    }
    for (const hook of this.#hooks.get(step) ?? []) {
      try {
        await hook.fn(ctx)
      } catch (error) {
        return wrapStepError(error, { step, hook: hook.name }, scope)
      }
    }
    return undefined
  }

  /** the cleanup action and every cleanup hook run, even when one of them fails */
  async #runCleanup(ctx: C, action: StepFunction<C>, failure: BackupError | undefined, scope: RunScope): Promise<BackupError | undefined> {
    let first: BackupError | undefined
    const attempt = async (fn: StepFunction<C>, hook?: string): Promise<void> => {
      try {
        await fn(ctx, failure)
      } catch (error) {
        const wrapped = wrapStepError(error, hook === undefined ? { step: 'cleanup' } : { step: 'cleanup', hook }, { errorContext: scope.errorContext })
        first ??= wrapped
        await this.#notify(ctx, wrapped)
      }
    }
    await attempt(action)
    for (const hook of this.#hooks.get('cleanup') ?? []) {
      await attempt(hook.fn, hook.name)
    }
    return first
  }

  async #notify(ctx: C, error: BackupError): Promise<void> {
    for (const observer of this.#observers) {
      try {
        await observer(ctx, error)
      } catch {
        // observers only observe: their own failures change nothing
      }
    }
  }
}
