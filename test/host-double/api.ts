/**
 * The API method registry and dispatcher, as in xo-server's `xo-mixins/api.mjs`:
 * `addApiMethod(name, fn)` / `addApiMethods({ ns: { fn } })` (each returns one remover),
 * a name clash throws, only `description`, `params`, `permission`, `resolve` may sit on `fn`,
 * and a call checks the permission, then the params (XO JSON Schema), then resolves objects,
 * then runs `fn.call(app, params)`. A method returning `undefined` answers `true`.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type { Connection } from './connection.js'
import { XoApiError, fromXapiError, invalidParameters, unauthorized } from './api-errors.js'
import { serializeError } from './serialize-error.js'
import { replaceSensitive } from './sensitive-values.js'
import { compileParams } from './xo-json-schema.js'
import type { ParamsValidator, XoParamsSchema } from './xo-json-schema.js'
import type { User } from './users.js'

/** `'admin' | 'write' | 'read'`; `null`: no sign-in needed; `undefined`: any signed-in user */
export type ApiPermission = 'admin' | 'write' | 'read' | null | undefined

/** `key: [param, types, permission]`: replace `params[param]` (an id) by the XO object as `params[key]` */
export type ApiResolve = { readonly [key: string]: readonly [param: string, types: string | readonly string[], permission?: string] }

// A method is declared with the params it expects; the registry validates them before the call.
type ApiFunction = { bivarianceHack(params: Record<string, unknown>): unknown }['bivarianceHack']

export interface ApiMethod extends ApiFunction {
  description?: string
  params?: XoParamsSchema
  permission?: ApiPermission
  resolve?: ApiResolve
}

export interface ApiMethods {
  readonly [name: string]: ApiMethod | ApiMethods
}

export interface ApiContext {
  readonly connection: Connection
  readonly user: User | undefined
  readonly permission: string
}

export interface ApiCallEvent {
  readonly callId: string
  readonly method: string
  readonly userId: string | undefined
  readonly userName: string
  readonly params: unknown
  readonly timestamp: number
  readonly duration?: number
  readonly result?: unknown
  readonly error?: unknown
}

export interface ApiHost {
  /** `this` of every API method: the `xo` app object */
  readonly thisArg: object
  getUser(id: string): User
  getObject(id: string, types?: string | readonly string[]): { readonly id: string }
  emit(event: 'xo:preCall' | 'xo:postCall', data: ApiCallEvent): void
}

const ALLOWED_METHOD_PROPS = new Set(['description', 'params', 'permission', 'resolve'])
const PERMISSION_LEVELS: Record<string, number> = { none: 0, read: 1, write: 2, admin: 3 }

interface Registered {
  readonly method: ApiMethod
  readonly validate: ParamsValidator | undefined
}

export class ApiRegistry {
  readonly #methods = new Map<string, Registered>()
  readonly #context = new AsyncLocalStorage<ApiContext>()
  readonly #host: ApiHost

  constructor(host: ApiHost) {
    this.#host = host
  }

  /** the context of the API call being served, if any */
  get context(): ApiContext | undefined {
    return this.#context.getStore()
  }

  has(name: string): boolean {
    return this.#methods.has(name)
  }

  names(): string[] {
    return [...this.#methods.keys()].sort()
  }

  /** `system.getMethodsInfo`: name → { description, params, permission } */
  info(): Record<string, { description?: string; params?: XoParamsSchema; permission?: ApiPermission }> {
    const info: Record<string, { description?: string; params?: XoParamsSchema; permission?: ApiPermission }> = {}
    for (const [name, { method }] of [...this.#methods].sort(([a], [b]) => (a < b ? -1 : 1))) {
      info[name] = { description: method.description, params: method.params, permission: method.permission }
    }
    return info
  }

  addApiMethod(name: string, method: ApiMethod): () => void {
    if (this.#methods.has(name)) throw new Error(`API method ${name} already exists`)
    if (typeof method !== 'function') throw new TypeError(`API method ${name} must be a function`)
    for (const prop of Object.keys(method)) {
      if (!ALLOWED_METHOD_PROPS.has(prop)) throw new Error(`invalid prop ${prop} for API method ${name}`)
    }
    const validate = method.params === undefined ? undefined : compileParams(method.params)
    const entry: Registered = { method, validate }
    this.#methods.set(name, entry)
    let removed = false
    return () => {
      if (removed) return
      removed = true
      if (this.#methods.get(name) === entry) this.#methods.delete(name)
    }
  }

  addApiMethods(methods: ApiMethods): () => void {
    const removers: (() => void)[] = []
    const add = (tree: ApiMethods, base: string): void => {
      for (const [key, value] of Object.entries(tree)) {
        const name = base + key
        if (typeof value === 'function') removers.push(this.addApiMethod(name, value))
        else add(value, name + '.')
      }
    }
    try {
      add(methods, '')
    } catch (error) {
      removers.forEach(remove => remove())
      throw error
    }
    let removed = false
    return () => {
      if (removed) return
      removed = true
      removers.forEach(remove => remove())
    }
  }

  /** serves one call made on `connection` */
  async call(connection: Connection, name: string, rawParams: unknown): Promise<unknown> {
    const entry = this.#methods.get(name)
    if (entry === undefined) throw new XoApiError(-32601, `method not found: ${name}`, name)
    const userId = connection.get<string | undefined>('user_id', undefined)
    const user = userId === undefined ? undefined : this.#host.getUser(userId)
    const context: ApiContext = { connection, user, permission: user?.permission ?? 'none' }
    return this.#context.run(context, () => this.#call(name, entry, rawParams, context))
  }

  async #call(name: string, { method, validate }: Registered, rawParams: unknown, context: ApiContext): Promise<unknown> {
    const host = this.#host
    const params: Record<string, unknown> =
      typeof rawParams === 'object' && rawParams !== null && !Array.isArray(rawParams) ? { ...(rawParams as Record<string, unknown>) } : {}
    const event = {
      callId: Math.random().toString(36).slice(2),
      method: name,
      userId: context.user?.id,
      userName: context.user?.email ?? '(unknown user)',
      params: replaceSensitive(params, '* obfuscated *'),
      timestamp: Date.now(),
    }
    host.emit('xo:preCall', event)
    try {
      checkPermission(method.permission, context)
      normalizeIdParam(name, method, params)
      if (validate !== undefined) checkParams(validate, params)
      const resolved = this.#resolve(method, params, context)
      let result = await method.call(host.thisArg, resolved)
      if (result === undefined) result = true
      host.emit('xo:postCall', { ...event, duration: Date.now() - event.timestamp, result })
      return result
    } catch (error) {
      host.emit('xo:postCall', { ...event, duration: Date.now() - event.timestamp, error: serializeError(error) })
      const translated = fromXapiError(error, ref => {
        try {
          return host.getObject(ref).id
        } catch {
          return ref
        }
      })
      if (translated !== undefined) throw translated
      const isRpcError = typeof (error as { toJsonRpcError?: unknown } | null)?.toJsonRpcError === 'function'
      // an admin gets the real message of an internal error; others get json-rpc-peer's generic error
      if (!isRpcError && context.permission === 'admin' && error instanceof Error) {
        throw new XoApiError(-32000, error.message, serializeError(error))
      }
      throw error
    }
  }

  #resolve(method: ApiMethod, params: Record<string, unknown>, context: ApiContext): Record<string, unknown> {
    const { resolve } = method
    if (resolve === undefined) return params
    if (context.user === undefined) throw unauthorized()
    const resolved = { ...params }
    for (const [key, [param, types, permission = 'administrate']] of Object.entries(resolve)) {
      const id = resolved[param]
      if (id === undefined || id === null) continue
      const object = this.#host.getObject(String(id), types)
      delete resolved[param]
      resolved[key] = object
      // the host double has no ACLs: only admins hold permissions on objects
      if (permission && context.permission !== 'admin') throw unauthorized(permission, object.id)
    }
    return resolved
  }
}

// A param suffixed by `?` is ignorable: dropped if this API does not know it, used otherwise.
function checkParams(validate: ParamsValidator, params: Record<string, unknown>): void {
  const ignorable = new Set<string>()
  for (const key of Object.keys(params)) {
    if (!key.endsWith('?')) continue
    const rawKey = key.slice(0, -1)
    if (Object.hasOwn(params, rawKey)) throw invalidParameters(`conflicting keys: ${rawKey} and ${key}`)
    params[rawKey] = params[key]
    delete params[key]
    ignorable.add(rawKey)
  }
  if (validate(params)) return
  const errors = (validate.errors ?? []).filter(error => {
    const extra = error.keyword === 'additionalProperties' && error.instancePath === '' ? String(error.params['additionalProperty']) : undefined
    if (extra === undefined || !ignorable.has(extra)) return true
    delete params[extra]
    return false
  })
  if (errors.length !== 0) throw invalidParameters(errors)
}

function checkPermission(permission: ApiPermission, context: ApiContext): void {
  if (permission === null) return
  if (context.user === undefined) throw unauthorized(permission)
  if (permission === undefined) return
  if ((PERMISSION_LEVELS[context.permission] ?? 0) < (PERMISSION_LEVELS[permission] ?? Infinity)) throw unauthorized(permission)
}

// xo-server accepts `vm.foo vm=<id>` for a method declaring an `id` param
function normalizeIdParam(name: string, method: ApiMethod, params: Record<string, unknown>): void {
  if (params['id'] !== undefined || method.params === undefined) return
  const namespace = name.slice(0, name.indexOf('.'))
  if ('id' in method.params && !(namespace in method.params) && typeof params[namespace] === 'string') {
    params['id'] = params[namespace]
    delete params[namespace]
  }
}
