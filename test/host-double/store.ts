/**
 * `xo.getStore(namespace)`: a persistent key/value store (xo-server uses LevelDB sublevels;
 * here one JSON file per namespace under `<datadir>/stores/`). Values must be JSON-serializable.
 */
import { join } from 'node:path'
import { JsonFile } from './json-file.js'

export interface KeyValueStore {
  get<T = unknown>(key: string): Promise<T | undefined>
  put(key: string, value: unknown): Promise<void>
  del(key: string): Promise<void>
  getAll(): Promise<Record<string, unknown>>
}

class JsonKeyValueStore implements KeyValueStore {
  readonly #file: JsonFile<Record<string, unknown>>
  #data: Promise<Record<string, unknown>> | undefined

  constructor(file: JsonFile<Record<string, unknown>>) {
    this.#file = file
  }

  #load(): Promise<Record<string, unknown>> {
    return (this.#data ??= this.#file.read({}))
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    const data = await this.#load()
    return Object.hasOwn(data, key) ? (structuredClone(data[key]) as T) : undefined
  }

  async put(key: string, value: unknown): Promise<void> {
    const data = await this.#load()
    data[key] = structuredClone(value)
    await this.#file.write(data)
  }

  async del(key: string): Promise<void> {
    const data = await this.#load()
    delete data[key]
    await this.#file.write(data)
  }

  async getAll(): Promise<Record<string, unknown>> {
    return structuredClone(await this.#load())
  }

  flush(): Promise<void> {
    return this.#file.flush()
  }
}

export class Stores {
  readonly #dir: string
  readonly #stores = new Map<string, JsonKeyValueStore>()

  constructor(dataDir: string) {
    this.#dir = join(dataDir, 'stores')
  }

  get(namespace: string): KeyValueStore {
    if (!/^[\w.@-]+$/.test(namespace)) throw new Error(`invalid store namespace: ${namespace}`)
    let store = this.#stores.get(namespace)
    if (store === undefined) {
      store = new JsonKeyValueStore(new JsonFile(join(this.#dir, `${namespace}.json`)))
      this.#stores.set(namespace, store)
    }
    return store
  }

  async flush(): Promise<void> {
    await Promise.all([...this.#stores.values()].map(store => store.flush()))
  }
}
