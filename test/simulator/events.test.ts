import assert from 'node:assert/strict'

import { startSimulatedPool, type SimulatedPool } from '../helpers/pool.js'

interface EventFrom {
  events: { id: string; class: string; ref: string; operation: string; snapshot: Record<string, unknown> }[]
  valid_ref_counts: Record<string, number>
  token: string
}

describe('simulated pool: events on the wire', () => {
  let pool: SimulatedPool
  let session: string

  async function rpc<T>(method: string, ...params: unknown[]): Promise<T> {
    const response = await fetch(`${pool.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })
    const body = (await response.json()) as { result?: T; error?: { message: string; data: unknown[] } }
    if (body.error !== undefined) throw Object.assign(new Error(body.error.message), { code: body.error.message, params: body.error.data })
    return body.result as T
  }

  before(async () => {
    pool = await startSimulatedPool()
    session = await rpc<string>('session.login_with_password', pool.user, pool.password)
  })
  after(() => pool.close())

  it('lists the watched classes through their get_all_records', async () => {
    const methods = await rpc<string[]>('system.listMethods')
    for (const cls of ['pool', 'host', 'VM', 'VDI', 'VBD', 'VIF', 'SR', 'task', 'network']) {
      assert.ok(methods.includes(`${cls}.get_all_records`), cls)
    }
    assert.ok(methods.includes('Async.VM.snapshot'))
  })

  it('answers event.from with the events after a token, their snapshots and valid_ref_counts', async () => {
    const poolRef = pool.sim.all('pool')[0]!.$ref
    const token = await rpc<string>('event.inject', session, 'pool', poolRef)
    const vm = pool.sim.findVm('vm1')
    await rpc('VM.set_name_description', session, vm.$ref, 'described')
    const task = await rpc<string>('task.create', session, 'label', '')

    const answer = await rpc<EventFrom>('event.from', session, ['VM', 'task'], token, 5.0)
    assert.deepEqual(
      answer.events.map(event => [event.class, event.ref, event.operation]),
      [
        ['vm', vm.$ref, 'mod'],
        ['task', task, 'add'],
      ]
    )
    assert.equal(answer.events[0]!.snapshot.name_description, 'described')
    assert.equal(answer.valid_ref_counts.task, pool.sim.all('task').length)
    assert.equal(answer.valid_ref_counts.vm, pool.sim.all('VM').length)

    // nothing new: the call waits for its timeout, then answers an empty list
    const started = Date.now()
    const empty = await rpc<EventFrom>('event.from', session, ['VM'], answer.token, 0.3)
    assert.deepEqual(empty.events, [])
    assert.ok(Date.now() - started >= 250)
  })

  it('ends a waiting event.from as soon as an event arrives', async () => {
    const { token } = await rpc<EventFrom>('event.from', session, ['task'], '', 0)
    const started = Date.now()
    const waiting = rpc<EventFrom>('event.from', session, ['task'], token, 30.0)
    await new Promise(resolve => setTimeout(resolve, 100))
    const task = await rpc<string>('task.create', session, 'wake up', '')
    const answer = await waiting
    assert.ok(Date.now() - started < 5_000)
    assert.deepEqual(answer.events.map(event => event.ref), [task])
  })

  it('announces a deleted object with a del event', async () => {
    const { token } = await rpc<EventFrom>('event.from', session, ['task'], '', 0)
    const task = await rpc<string>('task.create', session, 'short-lived', '')
    await rpc('task.destroy', session, task)
    const answer = await rpc<EventFrom>('event.from', session, ['task'], token, 1.0)
    assert.deepEqual(answer.events.map(event => event.operation), ['add', 'del'])
    await assert.rejects(rpc('task.get_record', session, task), { code: 'HANDLE_INVALID' })
  })
})
