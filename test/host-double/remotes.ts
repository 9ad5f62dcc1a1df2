/**
 * XO remotes (`xo-mixins/remotes.mjs`): a registry `{ id, name, url, enabled, options? }` kept in
 * `<datadir>/remotes.json`, and one connected, cached `@xen-orchestra/fs` handler per remote.
 * Editing a remote keeps its id and drops (forgets) its cached handler; a disabled remote
 * has no handler.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { noSuchObject } from './api-errors.js'
import { JsonFile } from './json-file.js'
import { OBFUSCATED_VALUE } from './sensitive-values.js'
import { loadFs, loadRemoteParser } from './vendor.js'
import type { FsHandler } from './vendor.js'

export interface Remote {
  readonly id: string
  readonly name: string
  readonly url: string
  readonly enabled: boolean
  readonly options?: string
  /** message of the last connection failure, '' after a success */
  readonly error?: string
}

export interface RemotePatch {
  readonly name?: string
  readonly url?: string
  readonly enabled?: boolean
  readonly options?: string
}

export class Remotes {
  readonly #file: JsonFile<Remote[]>
  #remotes: Map<string, Remote> | undefined
  readonly #handlers = new Map<string, Promise<FsHandler>>()

  constructor(dataDir: string) {
    this.#file = new JsonFile(join(dataDir, 'remotes.json'))
  }

  async #all(): Promise<Map<string, Remote>> {
    if (this.#remotes === undefined) {
      const list = await this.#file.read([])
      this.#remotes ??= new Map(list.map(remote => [remote.id, remote]))
    }
    return this.#remotes
  }

  async #save(): Promise<void> {
    await this.#file.write([...(await this.#all()).values()])
  }

  async #get(id: string): Promise<Remote> {
    const remote = (await this.#all()).get(id)
    if (remote === undefined) throw noSuchObject(id, 'remote')
    return remote
  }

  /** the remote with its credentials obfuscated in the URL */
  async getRemote(id: string): Promise<Remote> {
    return obfuscateRemote(await this.#get(id))
  }

  async getRemoteWithCredentials(id: string): Promise<Remote> {
    return { ...(await this.#get(id)) }
  }

  async getAllRemotes(): Promise<Remote[]> {
    return Promise.all([...(await this.#all()).values()].map(obfuscateRemote))
  }

  async createRemote({ name, url, options, enabled = true }: { name: string; url: string; options?: string; enabled?: boolean }): Promise<Remote> {
    const { parse } = await loadRemoteParser()
    parse(url) // rejects a URL no handler understands
    const remote: Remote = { id: randomUUID(), name, url, enabled, ...(options === undefined ? {} : { options }) }
    ;(await this.#all()).set(remote.id, remote)
    await this.#save()
    return obfuscateRemote(remote)
  }

  async updateRemote(id: string, patch: RemotePatch): Promise<Remote> {
    const remote = await this.#get(id)
    let url = patch.url
    if (url !== undefined) {
      const { parse, format } = await loadRemoteParser()
      // a URL sent back obfuscated keeps the stored password
      const parsed = parse(url)
      if (parsed.password === OBFUSCATED_VALUE) url = format({ ...parsed, password: parse(remote.url).password })
    }
    const updated: Remote = {
      ...remote,
      ...(patch.name === undefined ? {} : { name: patch.name }),
      ...(url === undefined ? {} : { url }),
      ...(patch.enabled === undefined ? {} : { enabled: patch.enabled }),
      ...(patch.options === undefined ? {} : { options: patch.options }),
    }
    ;(await this.#all()).set(id, updated)
    await this.#save()
    if (patch.url !== undefined || patch.enabled !== undefined || patch.options !== undefined) await this.#forgetHandler(id)
    return obfuscateRemote(updated)
  }

  async removeRemote(id: string): Promise<void> {
    await this.#get(id)
    await this.#forgetHandler(id)
    ;(await this.#all()).delete(id)
    await this.#save()
  }

  /** the connected handler of a remote (cached); throws for a disabled remote */
  async getRemoteHandler(remoteOrId: string | { readonly id: string }): Promise<FsHandler> {
    const id = typeof remoteOrId === 'string' ? remoteOrId : remoteOrId.id
    const remote = await this.#get(id)
    if (!remote.enabled) throw new Error(`remote ${remote.name} (${id}) is disabled`)
    let handler = this.#handlers.get(id)
    if (handler === undefined) {
      handler = this.#connect(remote)
      this.#handlers.set(id, handler)
      handler.catch(() => {
        if (this.#handlers.get(id) === handler) this.#handlers.delete(id)
      })
    }
    return handler
  }

  async testRemote(id: string): Promise<unknown> {
    const handler = await this.getRemoteHandler(id)
    return handler.test()
  }

  /** forgets every cached handler */
  async close(): Promise<void> {
    await Promise.all([...this.#handlers.keys()].map(id => this.#forgetHandler(id)))
    await this.#file.flush()
  }

  async #connect(remote: Remote): Promise<FsHandler> {
    const { getHandler } = await loadFs()
    const handler = getHandler({ url: remote.url, ...(remote.options === undefined ? {} : { options: remote.options }) })
    try {
      await handler.sync()
    } catch (error) {
      await this.#setError(remote.id, error instanceof Error ? error.message : String(error))
      throw error
    }
    await this.#setError(remote.id, '')
    return handler
  }

  async #setError(id: string, error: string): Promise<void> {
    const remotes = await this.#all()
    const remote = remotes.get(id)
    if (remote === undefined || remote.error === error) return
    remotes.set(id, { ...remote, error })
    await this.#save()
  }

  async #forgetHandler(id: string): Promise<void> {
    const handler = this.#handlers.get(id)
    if (handler === undefined) return
    this.#handlers.delete(id)
    try {
      await (await handler).forget()
    } catch {
      // a handler that never connected has nothing to forget
    }
  }
}

async function obfuscateRemote(remote: Remote): Promise<Remote> {
  const { parse, format } = await loadRemoteParser()
  let url = remote.url
  try {
    const parsed = parse(url)
    if (parsed.password !== undefined) url = format({ ...parsed, password: OBFUSCATED_VALUE })
  } catch {
    url = url.replace(/\/\/([^:/@]*):[^@/]*@/, `//$1:${OBFUSCATED_VALUE}@`)
  }
  return { ...remote, url }
}
