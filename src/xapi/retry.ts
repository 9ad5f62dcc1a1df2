/**
 * The one place where transient XAPI errors are retried, with a bound and a backoff:
 *
 * - `TOO_MANY_PENDING_TASKS` (the pool is busy), on any call;
 * - `OTHER_OPERATION_IN_PROGRESS` (another operation holds the object: XAPI serialises the
 *   operations on one object), on any call;
 * - `VDI_IN_USE` on the destroys (`VDI.destroy`, `VM.destroy`, `VDI.data_destroy`): right after an
 *   export, a disk stays attached to the control domain for a few seconds ("not fully unmounted
 *   yet"); before each retry, the disk's VBDs in the control domain are destroyed, as Xen
 *   Orchestra does. Every run meets it (the previous reference was the base of the delta just
 *   exported), and the release usually comes within a second or two: it is polled from 250 ms
 *   on, the delays doubling, within about the same minute in all.
 *
 * `withTransientRetry(xapi)` wraps a client once; every call of the product goes through it (the
 * lifecycle and the restore wrap the client they are given). Other errors, and transient ones past
 * the bound, reach the caller unchanged.
 */
import type { Ref, XapiClient } from './client.js'
import { NULL_REF } from './client.js'
import { xapiErrorCode } from './xapi-error.js'

export interface RetryPolicy {
  /** attempts in all, the first included (>= 1) */
  readonly attempts: number
  /** delay before the first retry; each next one is `factor` times longer, up to `maxDelayMs` */
  readonly firstDelayMs: number
  readonly factor: number
  readonly maxDelayMs: number
  /** how a delay is waited for (tests inject one that does not sleep) */
  readonly sleep: (ms: number) => Promise<void>
  /** told of each retry, before its delay */
  readonly onRetry?: (event: RetryEvent) => void
  /** `VDI_IN_USE` on a destroy: its own attempts and first delay (same factor and maximum) */
  readonly inUse: { readonly attempts: number; readonly firstDelayMs: number }
}

export interface RetryEvent {
  readonly method: string
  readonly code: string
  /** the attempt that failed, from 1 */
  readonly attempt: number
  readonly delayMs: number
}

/**
 * about a minute in all (Xen Orchestra waits 10 × 5 s): 1 s, 2 s, 4 s, 8 s, then 10 s; a disk in
 * use after an export: 0.25 s, 0.5 s, 1 s, 2 s, 4 s, 8 s, then 10 s
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  attempts: 10,
  firstDelayMs: 1000,
  factor: 2,
  maxDelayMs: 10_000,
  sleep: ms => new Promise(resolve => setTimeout(resolve, ms)),
  inUse: { attempts: 12, firstDelayMs: 250 },
}

const ANY_CALL = new Set(['TOO_MANY_PENDING_TASKS', 'OTHER_OPERATION_IN_PROGRESS'])
const DESTROYS = new Set(['VDI.destroy', 'VM.destroy', 'VDI.data_destroy'])

/** the delay before retry number `retry` (from 1) */
export function retryDelay(policy: Pick<RetryPolicy, 'firstDelayMs' | 'factor' | 'maxDelayMs'>, retry: number): number {
  return Math.min(policy.maxDelayMs, policy.firstDelayMs * policy.factor ** (retry - 1))
}

function isRetried(method: string, code: string | undefined): code is string {
  return code !== undefined && (ANY_CALL.has(code) || (code === 'VDI_IN_USE' && DESTROYS.has(method)))
}

const WRAPPED = Symbol('withTransientRetry')

type Getter = <T = unknown>(method: string, ...args: unknown[]) => Promise<T>

/** destroys the VBDs plugging `vdi` into a control domain; a VBD already gone is fine */
export async function disconnectFromControlDomain(call: Getter, vdi: Ref): Promise<void> {
  let vbds: Ref[]
  try {
    vbds = await call<Ref[]>('VDI.get_VBDs', vdi)
  } catch (error) {
    if (xapiErrorCode(error) === 'HANDLE_INVALID') {
      return
    }
    throw error
  }
  for (const vbd of vbds) {
    try {
      const vm = await call<Ref>('VBD.get_VM', vbd)
      if (vm === NULL_REF || !(await call<boolean>('VM.get_is_control_domain', vm))) {
        continue
      }
      if (await call<boolean>('VBD.get_currently_attached', vbd)) {
        await call('VBD.unplug', vbd).catch(() => {})
      }
      await call('VBD.destroy', vbd)
    } catch (error) {
      if (xapiErrorCode(error) !== 'HANDLE_INVALID') {
        throw error
      }
    }
  }
}

/** the disks a destroy retried on VDI_IN_USE is about */
async function disksOf(call: Getter, method: string, target: unknown): Promise<Ref[]> {
  if (typeof target !== 'string') {
    return []
  }
  if (method !== 'VM.destroy') {
    return [target]
  }
  const disks: Ref[] = []
  for (const vbd of await call<Ref[]>('VM.get_VBDs', target).catch(() => [] as Ref[])) {
    const vdi = await call<Ref>('VBD.get_VDI', vbd).catch(() => NULL_REF)
    if (vdi !== NULL_REF) {
      disks.push(vdi)
    }
  }
  return disks
}

/** the client with every call retried on transient errors; wrapping twice changes nothing */
export function withTransientRetry(xapi: XapiClient, options: Partial<RetryPolicy> = {}): XapiClient {
  if ((xapi as unknown as Record<symbol, unknown>)[WRAPPED] === true) {
    return xapi
  }
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...options }
  const rawCall: Getter = (method, ...args) => xapi.call(method, ...args)

  async function retrying<T>(method: string, args: readonly unknown[], attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt()
      } catch (error) {
        const code = xapiErrorCode(error)
        if (!isRetried(method, code)) {
          throw error
        }
        const schedule = code === 'VDI_IN_USE' ? { ...policy, ...policy.inUse } : policy
        if (n >= schedule.attempts) {
          throw error
        }
        const delayMs = retryDelay(schedule, n)
        policy.onRetry?.({ method, code, attempt: n, delayMs })
        if (code === 'VDI_IN_USE') {
          for (const vdi of await disksOf(rawCall, method, args[0])) {
            await disconnectFromControlDomain(rawCall, vdi).catch(() => {})
          }
        }
        await policy.sleep(delayMs)
      }
    }
  }

  const overrides: Partial<XapiClient> & Record<symbol, unknown> = {
    [WRAPPED]: true,
    call: (method: string, ...args: unknown[]) => retrying(method, args, () => xapi.call(method, ...args)),
    callAsync: (method: string, ...args: unknown[]) => retrying(method, args, () => xapi.callAsync(method, ...args)),
    // the export's task is created first: a busy pool refuses it before any byte moves (an
    // upload is not retried: its body cannot be sent twice)
    getResource: (pathname, opts) => retrying(`GET ${pathname}`, [], () => xapi.getResource(pathname, opts)),
  }
  return new Proxy(xapi, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) {
        return (overrides as Record<string | symbol, unknown>)[property]
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}
