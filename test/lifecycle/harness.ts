/**
 * What the lifecycle and restore integration tests share: a simulated pool with a connected
 * client, a `file://` remote, a `JobEnvironment` over them, a reporter that keeps its log, and
 * readers that hash what a restore point holds.
 */
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { JobEnvironment, JobSpec, RunReporter } from '../../src/lifecycle/job.js'
import { listRestorePoints } from '../../src/repository/restore-points.js'
import type { RestorePoint } from '../../src/repository/restore-points.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { verifyRemote } from '../../src/repository/verify.js'
import type { Problem } from '../../src/repository/verify.js'
import { connectXapi, startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool, StartPoolOptions, Xapi } from '../helpers/pool.js'
import { openRemote } from '../helpers/remotes.js'
import type { RemoteKind, TestRemote } from '../helpers/remotes.js'

export const MiB = 1024 * 1024
export const BLOCK = 2 * MiB

export interface LogEntry {
  readonly level: 'info' | 'warning' | 'end'
  readonly scope: string
  readonly message: string
}

/** a reporter that keeps every entry, for the tests to read */
export class RecordingReporter implements RunReporter {
  readonly #log: LogEntry[]
  readonly #scope: string
  readonly ended: { scope: string; status: string }[]

  constructor(scope = 'job', log: LogEntry[] = [], ended: { scope: string; status: string }[] = []) {
    this.#scope = scope
    this.#log = log
    this.ended = ended
  }

  get log(): readonly LogEntry[] {
    return this.#log
  }

  warnings(): string[] {
    return this.#log.filter(entry => entry.level === 'warning').map(entry => entry.message)
  }

  info(message: string): void {
    this.#log.push({ level: 'info', scope: this.#scope, message })
  }

  warning(message: string): void {
    this.#log.push({ level: 'warning', scope: this.#scope, message })
  }

  child(name: string): RunReporter {
    return new RecordingReporter(`${this.#scope} > ${name}`, this.#log, this.ended)
  }

  progress(): void {}

  end(result?: { status: string }): void {
    const status = result?.status ?? 'success'
    this.ended.push({ scope: this.#scope, status })
    this.#log.push({ level: 'end', scope: this.#scope, message: status })
  }
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of stream) {
    hash.update(chunk as Buffer)
  }
  return hash.digest('hex')
}

/** sha256 of the disk of source VDI `vdi` as restore point `point` holds it (its chain read as one disk) */
export async function hashRestoredDisk(handler: RemoteHandler, point: RestorePoint, vdi: string): Promise<string> {
  const disk = point.disks.find(candidate => candidate.vdi === vdi)
  if (disk === undefined) {
    throw new Error(`restore point ${point.id} holds no disk ${vdi}`)
  }
  const { stream } = await openChainRawStream(handler, disk.vhd)
  return sha256Of(stream)
}

export function restorePointsOf(handler: RemoteHandler, vm: string, jobId: string): Promise<RestorePoint[]> {
  return listRestorePoints(handler, { vm, jobId })
}

/** every problem `verify` finds on the remote (hints included), as `code path` lines */
export async function remoteProblems(handler: RemoteHandler, vm?: string): Promise<string[]> {
  const report = await verifyRemote(handler, vm === undefined ? {} : { vm })
  const problems: Problem[] = [...report.problems, ...report.restorePoints.flatMap(point => point.problems)]
  return problems.map(problem => `${problem.severity} ${problem.code} ${problem.path}`)
}

/** every file under `dir` of the remote, sorted (VHD directories listed file by file) */
export async function listTree(handler: RemoteHandler, dir = ''): Promise<string[]> {
  const files: string[] = []
  const walk = async (path: string): Promise<void> => {
    for (const name of await handler.list(path, { ignoreMissing: true })) {
      const child = path === '' ? name : `${path}/${name}`
      const below = await handler.list(child, { ignoreMissing: true }).catch(() => undefined)
      if (below === undefined) {
        files.push(child)
      } else {
        await walk(child)
      }
    }
  }
  await walk(dir)
  return files.sort()
}

export interface Harness {
  readonly pool: SimulatedPool
  readonly xapi: Xapi
  remote: TestRemote
  /** the handler `env.getRemoteHandler(remoteId)` answers; a test may swap it (the seed workflow) */
  handler: RemoteHandler
  readonly remoteId: string
  /**
   * The delays the product's XAPI retry layer asked for, in order: the harness does not sleep
   * them (the simulator's quirks count attempts, not time).
   */
  readonly retryDelays: number[]
  /** called at each retry delay, e.g. to end another client's operation meanwhile */
  onRetryDelay?: (delayMs: number) => void
  job(vms: readonly string[], overrides?: Partial<JobSpec>): JobSpec
  env(reporter?: RunReporter, extra?: { signal?: AbortSignal }): JobEnvironment
  close(): Promise<void>
}

export async function startHarness(opts: StartPoolOptions & { remote?: RemoteKind } = {}): Promise<Harness> {
  const { remote: kind = 'file', ...poolOptions } = opts
  const pool = await startSimulatedPool(poolOptions)
  const xapi = await connectXapi(pool)
  const remote = await openRemote(kind)
  const harness: Harness = {
    pool,
    xapi,
    remote,
    handler: remote.handler,
    remoteId: 'remote-1',
    retryDelays: [],
    job(vms, overrides = {}) {
      return {
        id: 'job-1',
        name: 'nightly',
        vms,
        remoteId: harness.remoteId,
        retention: 100,
        concurrency: 1,
        scheduleId: 'schedule-1',
        ...overrides,
      }
    },
    env(reporter = new RecordingReporter(), extra = {}) {
      return {
        getXapi: async () => xapi,
        getRemoteHandler: async remoteId => {
          if (remoteId !== harness.remoteId) throw new Error(`unknown remote ${remoteId}`)
          return harness.handler
        },
        reporter,
        xapiRetry: {
          sleep: async delayMs => {
            harness.retryDelays.push(delayMs)
            harness.onRetryDelay?.(delayMs)
          },
        },
        ...extra,
      }
    },
    async close() {
      await xapi.disconnect()
      await pool.close()
      await harness.remote.close()
    },
  }
  return harness
}
