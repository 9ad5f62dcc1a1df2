import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

interface RpcError {
  code: number
  message: string
  data?: { errors?: { instancePath: string; keyword: string; params: Record<string, unknown> }[]; permission?: string }
}

async function rejection(promise: Promise<unknown>): Promise<RpcError> {
  try {
    await promise
  } catch (error) {
    return error as RpcError
  }
  assert.fail('expected the call to fail')
}

describe('host double: loading a plugin and serving its API', function () {
  let host: HostDouble
  let admin: XoClient

  beforeEach(async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL })
    admin = await host.signIn()
  })

  afterEach(async function () {
    await host.close()
  })

  it('registers the plugin from its package.json and loads it with an empty configuration', async function () {
    assert.equal(host.pluginId, 'trivial')
    const [plugin] = await admin.call<{ id: string; version: string; description: string; loaded: boolean; unloadable: boolean; testable: boolean; configurationSchema: object }[]>('plugin.get')
    assert.equal(plugin!.id, 'trivial')
    assert.equal(plugin!.version, '1.2.3')
    assert.equal(plugin!.description, 'A tiny hand-written xo-server plugin used to exercise the host double')
    assert.equal(plugin!.loaded, true)
    assert.equal(plugin!.unloadable, true)
    assert.equal(plugin!.testable, true)
    assert.ok('properties' in plugin!.configurationSchema)
    // load() wrote into the data dir getDataDir() created
    assert.equal(await readFile(join(host.dataDir, 'trivial', 'loaded'), 'utf8'), 'yes')
  })

  it('calls a plugin method through xo-lib with `this` = the xo object and the configured defaults', async function () {
    assert.equal(admin.user?.email, 'admin@admin.net')
    assert.equal(await admin.call('trivial.greet', { name: 'Ada', times: 2 }), 'hello, Ada hello, Ada')
    assert.equal(await admin.call('trivial.whoami'), 'admin@admin.net')
  })

  it('answers a non-admin with XO unauthorized error, and lets any signed-in user call a method without permission', async function () {
    const user = await host.signIn('user@example.net', 'user')
    const error = await rejection(user.call('trivial.greet', { name: 'Ada' }))
    assert.equal(error.code, 2)
    assert.equal(error.message, 'not enough permissions')
    assert.equal(error.data?.permission, 'admin')
    assert.equal(await user.call('trivial.whoami'), 'user@example.net')
  })

  it('rejects wrong credentials with invalidCredentials', async function () {
    await assert.rejects(host.signIn('admin@admin.net', 'wrong'), (error: RpcError) => error.code === 3)
  })

  it('answers bad params with XO invalidParameters naming the failing path', async function () {
    const missing = await rejection(admin.call('trivial.greet', {}))
    assert.equal(missing.code, 10)
    assert.equal(missing.message, 'invalid parameters')
    assert.deepEqual(
      missing.data?.errors?.map(e => [e.keyword, e.params['missingProperty']]),
      [['required', 'name']]
    )

    const unknown = await rejection(admin.call('trivial.greet', { name: 'Ada', extra: 1 }))
    assert.deepEqual(unknown.data?.errors?.map(e => [e.keyword, e.params['additionalProperty']]), [['additionalProperties', 'extra']])

    const empty = await rejection(admin.call('trivial.greet', { name: '' }))
    assert.deepEqual(empty.data?.errors?.map(e => [e.instancePath, e.keyword]), [['/name', 'minLength']])

    const wrongType = await rejection(admin.call('trivial.greet', { name: 'Ada', times: 'twice' }))
    assert.deepEqual(wrongType.data?.errors?.map(e => [e.instancePath, e.keyword]), [['/times', 'type']])

    // a param suffixed by `?` is dropped when unknown and used when known
    assert.equal(await admin.call('trivial.greet', { name: 'Ada', 'extra?': 1, 'times?': 2 }), 'hello, Ada hello, Ada')
  })

  it('validates a configuration with Ajv, filling defaults (also inside array items), before configure()', async function () {
    await admin.call('plugin.configure', { id: 'trivial', configuration: { greeting: 'hi', password: 's3cret', targets: [{ name: 'a' }, { name: 'b', weight: 5 }] } })
    const received = await admin.call<{ configuration: unknown; loaded: boolean }>('trivial.configuration')
    assert.deepEqual(received, {
      configuration: { greeting: 'hi', password: 's3cret', targets: [{ name: 'a', weight: 1 }, { name: 'b', weight: 5 }] },
      loaded: true,
    })
    assert.equal(await admin.call('trivial.greet', { name: 'Ada' }), 'hi, Ada')

    const [plugin] = await admin.call<{ configuration: { password: string; greeting: string } }[]>('plugin.get')
    assert.equal(plugin!.configuration.greeting, 'hi')
    assert.notEqual(plugin!.configuration.password, 's3cret')

    // sending the obfuscated value back keeps the stored secret
    await admin.call('plugin.configure', { id: 'trivial', configuration: { ...plugin!.configuration, greeting: 'hey' } })
    const again = await admin.call<{ configuration: { password: string } }>('trivial.configuration')
    assert.equal(again.configuration.password, 's3cret')

    const invalid = await rejection(admin.call('plugin.configure', { id: 'trivial', configuration: { greeting: 42 } }))
    assert.equal(invalid.code, 10)
    assert.deepEqual(invalid.data?.errors?.map(e => e.instancePath), ['/greeting'])
    // a rejected configuration is not applied
    assert.equal(await admin.call('trivial.greet', { name: 'Ada' }), 'hey, Ada')

    // persisted with the secret in clear in the data dir only
    const stored = JSON.parse(await readFile(join(host.dataDir, 'plugins.json'), 'utf8')) as Record<string, { configuration: { password: string } }>
    assert.equal(stored['trivial']!.configuration.password, 's3cret')
  })

  it('configurePlugin(id, conf, true) merges with the stored configuration', async function () {
    await host.app.configurePlugin('trivial', { greeting: 'yo', targets: [{ name: 'x' }] })
    await host.app.configurePlugin('trivial', { greeting: 'sup' }, true)
    const received = await admin.call<{ configuration: unknown }>('trivial.configuration')
    assert.deepEqual(received.configuration, { greeting: 'sup', targets: [{ name: 'x', weight: 1 }] })
  })

  it('unload removes the methods, load brings them back', async function () {
    await admin.call('plugin.unload', { id: 'trivial' })
    const gone = await rejection(admin.call('trivial.greet', { name: 'Ada' }))
    assert.equal(gone.code, -32601)
    assert.equal(host.app.apiMethodNames.some(name => name.startsWith('trivial.')), false)
    const [plugin] = await admin.call<{ loaded: boolean }[]>('plugin.get')
    assert.equal(plugin!.loaded, false)

    const twice = await rejection(admin.call('plugin.unload', { id: 'trivial' }))
    assert.equal(twice.message, 'plugin already unloaded')

    await admin.call('plugin.load', { id: 'trivial' })
    assert.equal(await admin.call('trivial.greet', { name: 'Ada' }), 'hello, Ada')
  })

  it('tests a plugin with data validated against its testSchema', async function () {
    assert.equal(await admin.call('plugin.test', { id: 'trivial', data: { ping: 'ping' } }), true)
    const invalid = await rejection(admin.call('plugin.test', { id: 'trivial', data: { pong: 1 } }))
    assert.equal(invalid.code, 10)
    const failing = await rejection(admin.call('plugin.test', { id: 'trivial', data: { ping: 'pang' } }))
    assert.equal(failing.message, 'expected ping, got pang')
  })

  it('unknown plugin ids get noSuchObject', async function () {
    const error = await rejection(admin.call('plugin.load', { id: 'nope' }))
    assert.equal(error.code, 1)
    assert.deepEqual(error.data, { id: 'nope', type: 'plugin' })
  })
})
