import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble } from '../helpers/host.js'
import type { ApiCallEvent } from './api.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

describe('host double: events, stores and loggers', function () {
  let host: HostDouble

  beforeEach(async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL })
  })

  afterEach(async function () {
    await host.close()
  })

  it('emits xo:preCall and xo:postCall around each API call, secrets obfuscated', async function () {
    const events: [string, ApiCallEvent][] = []
    host.app.on('xo:preCall', (event: ApiCallEvent) => events.push(['pre', event]))
    host.app.on('xo:postCall', (event: ApiCallEvent) => events.push(['post', event]))
    const admin = await host.signIn()
    await admin.call('trivial.greet', { name: 'Ada' })
    await assert.rejects(admin.call('plugin.configure', { id: 'trivial', configuration: { password: 'hunter2', greeting: 1 } }))

    const calls = events.filter(([, event]) => event.method !== 'session.signIn')
    assert.deepEqual(
      calls.map(([phase, event]) => [phase, event.method, event.userName]),
      [
        ['pre', 'trivial.greet', 'admin@admin.net'],
        ['post', 'trivial.greet', 'admin@admin.net'],
        ['pre', 'plugin.configure', 'admin@admin.net'],
        ['post', 'plugin.configure', 'admin@admin.net'],
      ]
    )
    assert.equal(calls[1]![1].result, 'hello, Ada')
    assert.equal((calls[3]![1].error as { code: number }).code, 10)
    assert.equal(JSON.stringify(events).includes('hunter2'), false)
    assert.deepEqual((calls[2]![1].params as { configuration: unknown }).configuration, { password: '* obfuscated *', greeting: 1 })
  })

  it('registers API methods as xo-server does: one remover, clashes and unknown props refused, all or nothing', async function () {
    const app = host.app
    const fn = Object.assign(() => 'a', { permission: null })
    const remove = app.addApiMethods({ probe: { a: fn, nested: { b: () => 'b' } } })
    assert.deepEqual(app.apiMethodNames.filter(name => name.startsWith('probe.')), ['probe.a', 'probe.nested.b'])
    assert.throws(() => app.addApiMethod('probe.a', () => 1), /API method probe.a already exists/)
    assert.throws(() => app.addApiMethod('probe.c', Object.assign(() => 1, { timeout: 5 })), /invalid prop timeout for API method probe.c/)
    // a clash in a batch leaves none of the batch registered
    assert.throws(() => app.addApiMethods({ probe: { d: () => 1, a: () => 2 } }), /already exists/)
    assert.equal(app.apiMethodNames.includes('probe.d'), false)
    remove()
    remove()
    assert.deepEqual(app.apiMethodNames.filter(name => name.startsWith('probe.')), [])
    // `this` is the xo object; an undefined result answers true
    let self: unknown
    const removeOne = app.addApiMethod('probe.self', function (this: unknown) {
      self = this
    })
    const admin = await host.signIn()
    assert.equal(await admin.call('probe.self'), true)
    assert.equal(self, app)
    removeOne()
  })

  it('keeps a store per namespace in a JSON file', async function () {
    const store = host.app.getStore('notes')
    await store.put('a', { n: 1 })
    await store.put('b', [1, 2])
    await store.del('a')
    assert.equal(await store.get('a'), undefined)
    assert.deepEqual(await store.getAll(), { b: [1, 2] })
    assert.deepEqual(JSON.parse(await readFile(join(host.dataDir, 'stores/notes.json'), 'utf8')), { b: [1, 2] })
    assert.throws(() => host.app.getStore('../escape'), /invalid store namespace/)
  })

  it('records logger entries with an id per entry, also in logs.ndjson', async function () {
    const dataDir = await mkdtemp(join(tmpdir(), 'hd-logs-'))
    const kept = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    try {
      const logger = kept.app.getLogger('probe')
      const first = logger.notice('started', { n: 1, error: new Error('inner') })
      const second = logger.error('failed')
      assert.notEqual(first, second)
      const entries = kept.app.getLogs('probe')
      assert.deepEqual(entries.map(entry => [entry.id, entry.level, entry.message]), [[first, 'notice', 'started'], [second, 'error', 'failed']])
      assert.equal((entries[0]!.data!['error'] as { message: string }).message, 'inner')
      await kept.close()
      const lines = (await readFile(join(dataDir, 'logs.ndjson'), 'utf8')).trim().split('\n').map(line => JSON.parse(line) as { id: string; namespace: string })
      assert.deepEqual(lines.filter(entry => entry.namespace === 'probe').map(entry => entry.id), [first, second])
    } finally {
      await kept.close()
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
