import assert from 'node:assert/strict'
import { BackupError } from '../../src/errors.js'
import { Lifecycle } from '../../src/lifecycle/lifecycle.js'
import type { StepActions, StepFunction } from '../../src/lifecycle/lifecycle.js'
import { STEPS } from '../../src/lifecycle/steps.js'
import type { Step } from '../../src/lifecycle/steps.js'

interface Trace {
  readonly events: string[]
}

/** actions that log their step, except those given */
function actions(overrides: Partial<Record<Step, StepFunction<Trace>>> = {}): StepActions<Trace> {
  const logging = (step: Step): StepFunction<Trace> => ctx => {
    ctx.events.push(step)
  }
  return {
    checkPool: overrides.checkPool ?? logging('checkPool'),
    selectDisks: overrides.selectDisks ?? logging('selectDisks'),
    snapshot: overrides.snapshot ?? logging('snapshot'),
    chooseBase: overrides.chooseBase ?? logging('chooseBase'),
    transfer: overrides.transfer ?? logging('transfer'),
    commit: overrides.commit ?? logging('commit'),
    rotateReference: overrides.rotateReference ?? logging('rotateReference'),
    retention: overrides.retention ?? logging('retention'),
    cleanup: overrides.cleanup ?? ((ctx, failure) => void ctx.events.push(`cleanup(${failure?.code ?? 'ok'})`)),
  }
}

async function rejection(promise: Promise<unknown>): Promise<BackupError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof BackupError, `expected a BackupError, got ${String(error)}`)
    return error
  }
  assert.fail('expected a rejection')
}

describe('Lifecycle (hook runner)', () => {
  it('runs every step in order, each action before its hooks, hooks in registration order', async () => {
    const lifecycle = new Lifecycle<Trace>()
      .addHook('snapshot', 'second', ctx => void ctx.events.push('snapshot:second'))
      .addHook('selectDisks', 'only', ctx => void ctx.events.push('selectDisks:only'))
      .addHook('snapshot', 'third', async ctx => void ctx.events.push('snapshot:third'))
    const trace: Trace = { events: [] }
    await lifecycle.run(trace, actions())
    assert.deepEqual(trace.events, [
      'checkPool',
      'selectDisks',
      'selectDisks:only',
      'snapshot',
      'snapshot:second',
      'snapshot:third',
      'chooseBase',
      'transfer',
      'commit',
      'rotateReference',
      'retention',
      'cleanup(ok)',
    ])
    assert.deepEqual(lifecycle.hooksOf('snapshot'), ['second', 'third'])
    assert.equal(STEPS.at(-1), 'cleanup')
  })

  it('refuses a hook on an unknown step with a coded error', () => {
    const lifecycle = new Lifecycle<Trace>()
    assert.throws(
      () => lifecycle.addHook('afterEverything', 'mine', () => {}),
      (error: unknown) => error instanceof BackupError && error.code === 'UNKNOWN_STEP' && /afterEverything/.test(error.message)
    )
    assert.deepEqual(lifecycle.hooksOf('cleanup'), [])
  })

  it('wraps the first failure with the step and hook name, skips the next steps, still cleans up', async () => {
    const cause = new Error('disk on fire')
    const lifecycle = new Lifecycle<Trace>()
      .addHook('transfer', 'first', ctx => void ctx.events.push('transfer:first'))
      .addHook('transfer', 'burning', () => {
        throw cause
      })
      .addHook('transfer', 'never', ctx => void ctx.events.push('transfer:never'))
    const trace: Trace = { events: [] }
    const error = await rejection(lifecycle.run(trace, actions(), { errorContext: { vm: 'vm-1' } }))
    assert.equal(error.code, 'STEP_FAILED')
    assert.equal(error.context.step, 'transfer')
    assert.equal(error.context.hook, 'burning')
    assert.equal(error.context.vm, 'vm-1')
    assert.equal(error.cause, cause)
    assert.match(error.message, /transfer \(hook burning\): disk on fire/)
    assert.deepEqual(trace.events.slice(-3), ['transfer', 'transfer:first', 'cleanup(STEP_FAILED)'])
  })

  it('keeps the code and context of a BackupError thrown by an action', async () => {
    const lifecycle = new Lifecycle<Trace>()
    const thrown = new BackupError('POOL_TOO_OLD', 'too old', { pool: 'p1' })
    const error = await rejection(
      lifecycle.run({ events: [] }, actions({ checkPool: () => Promise.reject(thrown) }), { errorContext: { vm: 'vm-2' } })
    )
    assert.equal(error.code, 'POOL_TOO_OLD')
    assert.equal(error.context.step, 'checkPool')
    assert.equal(error.context.hook, undefined)
    assert.equal(error.context.pool, 'p1')
    assert.equal(error.context.vm, 'vm-2')
    assert.equal(error.cause, thrown)
  })

  it('turns a rejection without a value into a coded error', async () => {
    const lifecycle = new Lifecycle<Trace>().addHook('commit', 'silent', () => Promise.reject(undefined))
    const error = await rejection(lifecycle.run({ events: [] }, actions()))
    assert.equal(error.code, 'STEP_FAILED')
    assert.match(error.message, /commit \(hook silent\): rejected without a value/)
  })

  it('lets onError observers observe only: their failures change nothing', async () => {
    const seen: string[] = []
    const lifecycle = new Lifecycle<Trace>()
      .onError((_ctx, error) => {
        seen.push(`${error.code}@${String(error.context.step)}`)
        throw new Error('observer broke')
      })
      .onError((_ctx, error) => void seen.push(`second saw ${String(error.context.step)}`))
    const error = await rejection(lifecycle.run({ events: [] }, actions({ chooseBase: () => Promise.reject(new Error('x')) })))
    assert.equal(error.code, 'STEP_FAILED')
    assert.equal(error.context.step, 'chooseBase')
    assert.deepEqual(seen, ['STEP_FAILED@chooseBase', 'second saw chooseBase'])
  })

  it('runs every cleanup hook even when one fails; a cleanup failure after success is the error', async () => {
    const trace: Trace = { events: [] }
    const lifecycle = new Lifecycle<Trace>()
      .addHook('cleanup', 'broken', () => {
        throw new Error('cannot undo')
      })
      .addHook('cleanup', 'after', ctx => void ctx.events.push('cleanup:after'))
    const error = await rejection(lifecycle.run(trace, actions()))
    assert.equal(error.context.step, 'cleanup')
    assert.equal(error.context.hook, 'broken')
    assert.deepEqual(trace.events.slice(-2), ['cleanup(ok)', 'cleanup:after'])
  })

  it('keeps the first failure when cleanup fails too, and reports both to the observers', async () => {
    const seen: string[] = []
    const lifecycle = new Lifecycle<Trace>()
      .addHook('cleanup', 'broken', () => {
        throw new Error('cannot undo')
      })
      .onError((_ctx, error) => void seen.push(String(error.context.step)))
    const error = await rejection(lifecycle.run({ events: [] }, actions({ snapshot: () => Promise.reject(new Error('no space')) })))
    assert.equal(error.context.step, 'snapshot')
    assert.deepEqual(seen, ['snapshot', 'cleanup'])
  })

  it('starts no step once the signal is aborted, and reports CANCELLED', async () => {
    const controller = new AbortController()
    const trace: Trace = { events: [] }
    const lifecycle = new Lifecycle<Trace>()
    const error = await rejection(
      lifecycle.run(
        trace,
        actions({
          selectDisks: ctx => {
            ctx.events.push('selectDisks')
            controller.abort()
          },
        }),
        { signal: controller.signal }
      )
    )
    assert.equal(error.code, 'CANCELLED')
    assert.equal(error.context.step, 'snapshot')
    assert.deepEqual(trace.events, ['checkPool', 'selectDisks', 'cleanup(CANCELLED)'])
  })

  it('reports a failure caused by the abort as CANCELLED', async () => {
    const controller = new AbortController()
    const lifecycle = new Lifecycle<Trace>()
    const error = await rejection(
      lifecycle.run(
        { events: [] },
        actions({
          transfer: () => {
            controller.abort()
            throw new Error('stream destroyed')
          },
        }),
        { signal: controller.signal }
      )
    )
    assert.equal(error.code, 'CANCELLED')
    assert.equal(error.context.step, 'transfer')
  })
})
