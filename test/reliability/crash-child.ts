/**
 * Runs one backup job in its own process and, on request, dies by SIGKILL right before its Nth
 * change to the remote (a write, rename, unlink...), so that a test can check what a crash at
 * that point leaves behind. Every change is announced on stdout first (`{"change":...}`), and a
 * run that completes prints `{"done":...}` with its result and the number of changes it made.
 *
 * Environment: CRASH_RUN, JSON `{ pool: { url, user, password }, remote: url, job: JobSpec }`.
 * The child loads, connects to the pool and the remote, prints `{"ready":true}`, then waits for
 * one line on stdin, JSON `{ killBefore?: number }`, before it runs the job: a test starts the
 * next child while it checks the last run.
 */
import { createInterface } from 'node:readline'
import { writeSync } from 'node:fs'
import type { JobSpec, RunReporter } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import type { XapiClient } from '../../src/xapi/client.js'
import { openHandler } from '../helpers/remotes.js'
import { phaseOf } from './crash-phases.js'
import type { Change, CrashGo, Phase } from './crash-phases.js'
import { WRITING_METHODS } from './faulty-handler.js'

export interface CrashRunSpec {
  readonly pool: { readonly url: string; readonly user: string; readonly password: string }
  readonly remote: string
  readonly job: JobSpec
}

export type CrashChildLine =
  | { readonly ready: true }
  | { readonly change: Change & { readonly index: number; readonly phase: Phase } }
  | { readonly done: { readonly status: string; readonly changes: number; readonly restorePoint?: string; readonly error?: string } }

interface XenApi {
  createClient(opts: { url: string; auth: { user: string; password: string }; allowUnauthorized?: boolean; debounce?: number }): XapiClient & {
    connect(): Promise<void>
    readonly objectsFetched: Promise<void>
  }
}

/** a connected `xen-api` client (the test helpers would load the whole simulator) */
async function connectXapi(pool: CrashRunSpec['pool']): Promise<XapiClient> {
  const { createClient } = (await import('xen-api' as string)) as XenApi
  const xapi = createClient({ url: pool.url, auth: { user: pool.user, password: pool.password }, allowUnauthorized: true, debounce: 20 })
  await xapi.connect()
  await xapi.objectsFetched
  return xapi
}

function emit(line: CrashChildLine): void {
  // synchronous: the line is out before the process may die
  writeSync(1, JSON.stringify(line) + '\n')
}

const silent: RunReporter = {
  info() {},
  warning() {},
  child: () => silent,
  progress() {},
  end() {},
}

function dyingHandler(handler: RemoteHandler, go: CrashGo, counter: { changes: number }): RemoteHandler {
  const writing = new Set<string>(WRITING_METHODS)
  const changes: Change[] = []
  let inPhase = 0
  return new Proxy(handler, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      const method = value as (...args: unknown[]) => unknown
      if (typeof property !== 'string' || !writing.has(property)) return method.bind(target)
      return (...args: unknown[]) => {
        const path = typeof args[0] === 'string' ? args[0] : String((args[0] as { path?: unknown } | undefined)?.path)
        changes.push({ method: property, path })
        const phase = phaseOf(changes)
        emit({ change: { index: ++counter.changes, method: property, path, phase } })
        if (phase === go.phase && ++inPhase === go.nth) process.kill(process.pid, 'SIGKILL')
        return method.apply(target, args)
      }
    },
  })
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.CRASH_RUN ?? 'null') as CrashRunSpec
  const xapi = await connectXapi(spec.pool)
  const { value: handler } = await openHandler(spec.remote)
  emit({ ready: true })
  const lines = createInterface({ input: process.stdin })
  const next = await lines[Symbol.asyncIterator]().next()
  lines.close()
  if (next.done === true) process.exit(0)
  const go = JSON.parse(String(next.value)) as CrashGo
  const counter = { changes: 0 }
  const remote = dyingHandler(handler, go, counter)
  // the simulator's quirks count attempts, not time: retries need not wait
  const xapiRetry = { sleep: () => Promise.resolve() }
  const result = await runJob(spec.job, { getXapi: async () => xapi, getRemoteHandler: async () => remote, reporter: silent, xapiRetry })
  const vm = result.vms[0]
  emit({
    done: {
      status: result.status,
      changes: counter.changes,
      ...(vm?.restorePoint === undefined ? {} : { restorePoint: vm.restorePoint }),
      ...(vm?.error === undefined ? {} : { error: vm.error }),
    },
  })
  process.exit(0)
}

await main()
