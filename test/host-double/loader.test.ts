import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHostDouble } from '../helpers/host.js'
import type { HostDouble } from '../helpers/host.js'

/** writes a one-file ESM plugin package `xo-server-<id>` and returns its folder */
async function writePlugin(root: string, id: string, source: string, pkg: Record<string, unknown> = {}): Promise<string> {
  const dir = join(root, `xo-server-${id}`)
  await mkdir(join(dir, 'lib'), { recursive: true })
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `xo-server-${id}`, version: '0.0.1', type: 'module', exports: { '.': { import: './lib/entry.js' } }, ...pkg }))
  await writeFile(join(dir, 'lib/entry.js'), source)
  return dir
}

// a plugin whose schema requires a property: configure({}) fails on first registration
const NEEDS_CONFIGURATION = `
const plugin = {
  default: ({ xo, staticConfig, getDataDir }) => {
    staticConfig.factoryCalls.push(typeof xo.addApiMethods)
    return {
      configure(configuration, state) { staticConfig.configured.push({ configuration, state }) },
      load() { staticConfig.loads.push(true) },
      unload() {},
    }
  },
  // a function: called with the same options as the factory
  configurationSchema: ({ staticConfig }) => ({
    type: 'object',
    properties: { url: { type: 'string' }, retries: { type: 'integer', default: staticConfig.defaultRetries } },
    required: ['url'],
  }),
}
export default plugin
`

const NO_SCHEMA_NO_UNLOAD = `
export default function factory() {
  return { load() {} }
}
`

// a type alias (not an interface), so that it fits `Record<string, unknown>` as staticConfig
type Recorder = {
  defaultRetries: number
  factoryCalls: string[]
  configured: { configuration: Record<string, unknown>; state: { loaded: boolean } }[]
  loads: boolean[]
}

describe('host double: plugin loading semantics', function () {
  let root: string
  let host: HostDouble | undefined

  beforeEach(async function () {
    root = await mkdtemp(join(tmpdir(), 'hd-plugins-'))
  })

  afterEach(async function () {
    await host?.close()
    host = undefined
    await rm(root, { recursive: true, force: true })
  })

  it('swallows a failing configure({}) on first registration: the plugin stays unloaded until configured', async function () {
    const pluginDir = await writePlugin(root, 'needs-conf', NEEDS_CONFIGURATION)
    const recorder: Recorder = { defaultRetries: 3, factoryCalls: [], configured: [], loads: [] }
    host = await startHostDouble({ pluginDir, pluginsConfig: { 'needs-conf': recorder } })
    assert.equal(host.pluginId, 'needs-conf')
    assert.deepEqual(recorder.factoryCalls, ['function'])
    assert.equal(recorder.configured.length, 0)
    assert.equal(recorder.loads.length, 0)
    const admin = await host.signIn()
    const [plugin] = await admin.call<{ loaded: boolean; configurationSchema: { required: string[] } }[]>('plugin.get')
    assert.equal(plugin!.loaded, false)
    assert.deepEqual(plugin!.configurationSchema.required, ['url'])
    await assert.rejects(admin.call('plugin.load', { id: 'needs-conf' }), { message: 'plugin not configured' })

    await admin.call('plugin.configure', { id: 'needs-conf', configuration: { url: 'http://x' } })
    // the default came from the schema the function built from staticConfig
    assert.deepEqual(recorder.configured, [{ configuration: { url: 'http://x', retries: 3 }, state: { loaded: false } }])
    await admin.call('plugin.load', { id: 'needs-conf' })
    assert.deepEqual(recorder.loads, [true])
    await admin.call('plugin.configure', { id: 'needs-conf', configuration: { url: 'http://y' } })
    assert.deepEqual(recorder.configured[1]!.state, { loaded: true })
    assert.deepEqual(recorder.factoryCalls, ['function'], 'the factory is called once')
  })

  it('restores the stored configuration and autoload flag on restart', async function () {
    const pluginDir = await writePlugin(root, 'needs-conf', NEEDS_CONFIGURATION)
    const dataDir = join(root, 'data')
    const first: Recorder = { defaultRetries: 1, factoryCalls: [], configured: [], loads: [] }
    host = await startHostDouble({ pluginDir, dataDir, pluginsConfig: { 'needs-conf': first } })
    await host.app.configurePlugin('needs-conf', { url: 'http://kept', retries: 7 })
    await host.app.loadPlugin('needs-conf')
    await host.app.getStore('notes').put('answer', { value: 42 })
    await host.close()

    // a fresh import would return the cached module: a new copy of the package is loaded
    const copyDir = await writePlugin(join(root, 'copy'), 'needs-conf', NEEDS_CONFIGURATION)
    const second: Recorder = { defaultRetries: 1, factoryCalls: [], configured: [], loads: [] }
    host = await startHostDouble({ pluginDir: copyDir, dataDir, pluginsConfig: { 'needs-conf': second } })
    assert.deepEqual(second.configured, [{ configuration: { url: 'http://kept', retries: 7 }, state: { loaded: false } }])
    assert.deepEqual(second.loads, [true])
    assert.deepEqual(await host.app.getStore('notes').get('answer'), { value: 42 })

    await host.app.disablePluginAutoload('needs-conf')
    await host.close()
    const third: Recorder = { defaultRetries: 1, factoryCalls: [], configured: [], loads: [] }
    host = await startHostDouble({ pluginDir: copyDir, dataDir, pluginsConfig: { 'needs-conf': third } })
    assert.equal(third.configured.length, 1)
    assert.deepEqual(third.loads, [], 'autoload disabled')
    const stored = JSON.parse(await readFile(join(dataDir, 'plugins.json'), 'utf8')) as Record<string, { autoload: boolean }>
    assert.equal(stored['needs-conf']!.autoload, false)
  })

  it('loads a plugin without schema at once; refuses to configure or unload it', async function () {
    host = await startHostDouble({ pluginDir: await writePlugin(root, 'bare', NO_SCHEMA_NO_UNLOAD, { description: 'bare plugin' }) })
    const plugin = await host.app.getPlugin('bare')
    assert.deepEqual(
      { loaded: plugin.loaded, unloadable: plugin.unloadable, testable: plugin.testable, description: plugin.description, version: plugin.version },
      { loaded: true, unloadable: false, testable: false, description: 'bare plugin', version: '0.0.1' }
    )
    await assert.rejects(host.app.configurePlugin('bare', {}), { message: 'plugin not configurable' })
    await assert.rejects(host.app.unloadPlugin('bare'), { message: 'plugin cannot be unloaded' })
    await assert.rejects(host.app.testPlugin('bare', {}), { message: 'plugin not testable' })
  })

  it('registers without loading when autoload is false', async function () {
    host = await startHostDouble({ pluginDir: await writePlugin(root, 'lazy', NO_SCHEMA_NO_UNLOAD), autoload: false })
    assert.equal((await host.app.getPlugin('lazy')).loaded, false)
    await host.app.loadPlugin('lazy')
    assert.equal((await host.app.getPlugin('lazy')).loaded, true)
  })

  it('refuses a package whose name is not xo-server-<id>', async function () {
    const dir = join(root, 'other')
    await mkdir(dir)
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'not-a-plugin', type: 'module' }))
    await assert.rejects(startHostDouble({ pluginDir: dir }), /not an xo-server plugin package name/)
  })
})
