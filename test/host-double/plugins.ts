/**
 * Plugin loading and lifecycle, as xo-server 5.207 does it (`index.mjs` registerPlugin and
 * `xo-mixins/plugins.mjs`):
 * - the entry of the plugin's package is imported and its DEFAULT export taken; from it
 *   `default` (the factory, else the export itself), `configurationSchema`,
 *   `configurationPresets` and `testSchema` are read, each called with
 *   `{ xo, staticConfig, getDataDir }` when it is a function;
 * - the factory is called once; on first registration `configure({})` is tried (a validation
 *   failure is swallowed and the plugin stays unloaded), then `load()` if autoload is on;
 * - every configuration is validated with Ajv (`useDefaults`) before `configure(conf, { loaded })`;
 * - configuration and autoload are stored (`<datadir>/plugins.json`), secrets obfuscated on read.
 */
import { mkdir, readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Ajv } from 'ajv'
import { invalidParameters, noSuchObject } from './api-errors.js'
import { JsonFile } from './json-file.js'
import { mergeSensitive, obfuscate } from './sensitive-values.js'

export interface PluginInstance {
  configure?(configuration: Record<string, unknown>, state: { loaded: boolean }): unknown
  load(): unknown
  unload?(): unknown
  test?(data: unknown): unknown
}

export interface PluginFactoryOptions<Xo> {
  readonly xo: Xo
  /** the `[plugins.<id>]` section of xo-server's configuration */
  readonly staticConfig: Record<string, unknown>
  /** creates and returns `<datadir>/<id>` */
  readonly getDataDir: () => Promise<string>
}

type Schema = Record<string, unknown>
type Provided<T, Xo> = T | ((opts: PluginFactoryOptions<Xo>) => T | Promise<T>)

/** what the default export of a plugin entry may carry */
interface PluginExport<Xo> {
  default?: Provided<PluginInstance, Xo>
  configurationSchema?: Provided<Schema, Xo>
  configurationPresets?: Provided<Record<string, unknown>, Xo>
  testSchema?: Provided<Schema, Xo>
}

export interface PluginInfo {
  readonly id: string
  readonly name: string
  readonly autoload: boolean
  readonly description: string | undefined
  readonly version: string
  readonly loaded: boolean
  readonly unloadable: boolean
  readonly testable: boolean
  readonly configuration: Record<string, unknown> | undefined
  readonly configurationPresets: Record<string, unknown> | undefined
  readonly configurationSchema: Schema | undefined
  readonly testSchema: Schema | undefined
}

interface PluginEntry {
  readonly id: string
  readonly instance: PluginInstance
  readonly configurationSchema: Schema | undefined
  readonly configurationPresets: Record<string, unknown> | undefined
  readonly testSchema: Schema | undefined
  readonly description: string | undefined
  readonly version: string
  configured: boolean
  loaded: boolean
  loading: boolean
}

interface PluginMetadata {
  autoload: boolean
  configuration?: Record<string, unknown>
}

interface PackageJson {
  name?: string
  description?: string
  version?: string
  main?: string
  exports?: string | Record<string, unknown>
}

/** `xo-server-foo` → `foo`, `@xen-orchestra/server-foo` → `foo` */
export function pluginIdOf(packageName: string): string {
  const match = /^(?:xo-server-|@xen-orchestra\/server-)(.+)$/.exec(packageName)
  if (match === null) throw new Error(`not an xo-server plugin package name: ${packageName}`)
  return match[1]!
}

function entryOf(pkg: PackageJson): string {
  const { exports } = pkg
  if (typeof exports === 'string') return exports
  if (exports !== undefined) {
    const root = (exports['.'] ?? exports) as unknown
    if (typeof root === 'string') return root
    if (typeof root === 'object' && root !== null) {
      const conditions = root as Record<string, unknown>
      for (const condition of ['import', 'node', 'default']) {
        if (typeof conditions[condition] === 'string') return conditions[condition] as string
      }
    }
  }
  return pkg.main ?? 'index.js'
}

export class Plugins<Xo> {
  readonly #plugins = new Map<string, PluginEntry>()
  readonly #metadata: JsonFile<Record<string, PluginMetadata>>
  #metadataCache: Record<string, PluginMetadata> | undefined
  readonly #ajv = new Ajv({ strict: 'log', logger: false, useDefaults: true }).addVocabulary(['$type', 'enumNames'])
  readonly #xo: Xo
  readonly #dataDir: string
  readonly #staticConfig: Record<string, Record<string, unknown>>

  constructor(opts: { xo: Xo; dataDir: string; staticConfig?: Record<string, Record<string, unknown>> }) {
    this.#xo = opts.xo
    this.#dataDir = opts.dataDir
    this.#staticConfig = opts.staticConfig ?? {}
    this.#metadata = new JsonFile(join(opts.dataDir, 'plugins.json'))
  }

  /** loads the plugin package in `dir` and registers it; returns its id */
  async loadPluginPackage(dir: string, { autoload }: { autoload?: boolean } = {}): Promise<string> {
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson
    if (pkg.name === undefined) throw new Error(`${dir}/package.json has no name`)
    const id = pluginIdOf(pkg.name)
    const entry = resolve(dir, entryOf(pkg))
    const plugin = ((await import(pathToFileURL(entry).href)) as { default?: unknown }).default
    if (plugin === undefined || plugin === null) throw new Error(`${entry} has no default export`)
    const exported = plugin as PluginExport<Xo>
    const factory = exported.default ?? (plugin as Provided<PluginInstance, Xo>)
    const options: PluginFactoryOptions<Xo> = {
      xo: this.#xo,
      staticConfig: this.#staticConfig[id] ?? {},
      getDataDir: () => this.getDataDir(id),
    }
    const provide = <T>(value: Provided<T, Xo> | undefined): Promise<T | undefined> | T | undefined =>
      typeof value === 'function' ? (value as (opts: PluginFactoryOptions<Xo>) => T | Promise<T>)(options) : value
    const [instance, configurationSchema, configurationPresets, testSchema] = await Promise.all([
      provide(factory),
      provide(exported.configurationSchema),
      provide(exported.configurationPresets),
      provide(exported.testSchema),
    ])
    if (instance === undefined || typeof instance.load !== 'function') throw new Error(`plugin ${id}: the factory did not return an instance with load()`)
    if (autoload !== undefined) {
      const metadata = await this.#readMetadata()
      metadata[id] = { ...metadata[id], autoload }
      await this.#metadata.write(metadata)
    }
    await this.registerPlugin(id, instance, { configurationSchema, configurationPresets, testSchema, description: pkg.description, version: pkg.version ?? 'unknown' })
    return id
  }

  async getDataDir(id: string): Promise<string> {
    const dir = join(this.#dataDir, id)
    await mkdir(dir, { recursive: true })
    return dir
  }

  async registerPlugin(
    id: string,
    instance: PluginInstance,
    meta: { configurationSchema?: Schema; configurationPresets?: Record<string, unknown>; testSchema?: Schema; description?: string; version: string }
  ): Promise<void> {
    if (this.#plugins.has(id)) throw new Error(`plugin ${id} is already registered`)
    const plugin: PluginEntry = {
      id,
      instance,
      configurationSchema: meta.configurationSchema,
      configurationPresets: meta.configurationPresets,
      testSchema: meta.testSchema,
      description: meta.description,
      version: meta.version,
      configured: meta.configurationSchema === undefined,
      loaded: false,
      loading: false,
    }
    this.#plugins.set(id, plugin)

    const metadata = await this.#readMetadata()
    let stored = metadata[id]
    if (stored === undefined) {
      stored = metadata[id] = { autoload: true }
      await this.#metadata.write(metadata)
    }
    if (!plugin.configured) {
      const tryEmpty = stored.configuration === undefined
      try {
        await this.#configure(plugin, tryEmpty ? {} : stored.configuration!)
      } catch (error) {
        if (tryEmpty) return
        throw error
      }
    }
    if (stored.autoload) await this.loadPlugin(id)
  }

  async getPlugin(id: string): Promise<PluginInfo> {
    const plugin = this.#get(id)
    const stored = (await this.#readMetadata())[id]
    return {
      id,
      name: id,
      autoload: stored?.autoload ?? true,
      description: plugin.description,
      version: plugin.version,
      loaded: plugin.loaded,
      unloadable: typeof plugin.instance.unload === 'function',
      testable: typeof plugin.instance.test === 'function',
      configuration: stored?.configuration === undefined ? undefined : obfuscate(stored.configuration),
      configurationPresets: plugin.configurationPresets,
      configurationSchema: plugin.configurationSchema,
      testSchema: plugin.testSchema,
    }
  }

  async getPlugins(): Promise<PluginInfo[]> {
    return Promise.all([...this.#plugins.keys()].map(id => this.getPlugin(id)))
  }

  /**
   * Validates and applies a configuration, then stores it. Obfuscated secrets sent back keep
   * their stored value; with `mergeWithExisting`, the new properties are merged over the stored ones.
   */
  async configurePlugin(id: string, configuration: Record<string, unknown>, mergeWithExisting: boolean | { mergeWithExisting?: boolean } = false): Promise<void> {
    const plugin = this.#get(id)
    const metadata = await this.#readMetadata()
    const stored = metadata[id]?.configuration
    let next = configuration
    if (stored !== undefined) {
      next = mergeSensitive(configuration, stored) as Record<string, unknown>
      const merge = typeof mergeWithExisting === 'boolean' ? mergeWithExisting : mergeWithExisting.mergeWithExisting === true
      if (merge) next = { ...stored, ...next }
    }
    next = structuredClone(next)
    await this.#configure(plugin, next)
    metadata[id] = { autoload: metadata[id]?.autoload ?? true, configuration: next }
    await this.#metadata.write(metadata)
  }

  async purgePluginConfiguration(id: string): Promise<void> {
    this.#get(id)
    const metadata = await this.#readMetadata()
    if (metadata[id] !== undefined) delete metadata[id].configuration
    await this.#metadata.write(metadata)
  }

  async setAutoload(id: string, autoload: boolean): Promise<void> {
    this.#get(id)
    const metadata = await this.#readMetadata()
    metadata[id] = { ...metadata[id], autoload }
    await this.#metadata.write(metadata)
  }

  async loadPlugin(id: string): Promise<void> {
    const plugin = this.#get(id)
    if (plugin.loaded) throw invalidParameters('plugin already loaded')
    if (!plugin.configured) throw invalidParameters('plugin not configured')
    if (plugin.loading) throw invalidParameters('plugin is loading')
    plugin.loading = true
    try {
      await plugin.instance.load()
      plugin.loaded = true
    } finally {
      plugin.loading = false
    }
  }

  async unloadPlugin(id: string): Promise<void> {
    const plugin = this.#get(id)
    if (!plugin.loaded) throw invalidParameters('plugin already unloaded')
    if (typeof plugin.instance.unload !== 'function') throw invalidParameters('plugin cannot be unloaded')
    await plugin.instance.unload()
    plugin.loaded = false
  }

  async testPlugin(id: string, data: unknown): Promise<unknown> {
    const plugin = this.#get(id)
    if (typeof plugin.instance.test !== 'function') throw invalidParameters('plugin not testable')
    if (!plugin.loaded) throw invalidParameters('plugin not loaded')
    if (plugin.testSchema !== undefined) {
      if (data === undefined || data === null) throw invalidParameters([{ field: 'data', message: 'is the wrong type' }])
      const validate = this.#ajv.compile(plugin.testSchema)
      if (!validate(data)) throw invalidParameters(validate.errors ?? [])
    }
    return plugin.instance.test(data)
  }

  /** unloads every loaded, unloadable plugin (host shutdown) */
  async unloadAll(): Promise<void> {
    for (const plugin of this.#plugins.values()) {
      if (plugin.loaded && typeof plugin.instance.unload === 'function') await this.unloadPlugin(plugin.id)
    }
    await this.#metadata.flush()
  }

  async #configure(plugin: PluginEntry, configuration: Record<string, unknown>): Promise<void> {
    if (plugin.configurationSchema === undefined) throw invalidParameters('plugin not configurable')
    const validate = this.#ajv.compile(plugin.configurationSchema)
    if (!validate(configuration)) throw invalidParameters(validate.errors ?? [])
    await plugin.instance.configure?.({ ...configuration }, { loaded: plugin.loaded })
    plugin.configured = true
  }

  #get(id: string): PluginEntry {
    const plugin = this.#plugins.get(id)
    if (plugin === undefined) throw noSuchObject(id, 'plugin')
    return plugin
  }

  async #readMetadata(): Promise<Record<string, PluginMetadata>> {
    return (this.#metadataCache ??= await this.#metadata.read({}))
  }
}
