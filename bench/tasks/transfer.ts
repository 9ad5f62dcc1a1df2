/** Delta transfer measurements: our whole backup run, and the raw delta stream it is compared to. */
import { createWriteStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { get } from 'node:http'
import { performance } from 'node:perf_hooks'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { RunReporter } from '../../src/lifecycle/job.js'
import { NULL_REF, type XapiClient, type XapiRecord } from '../../src/xapi/client.js'
import { peakRssMiB } from '../lib/fs-utils.js'
import { openLocalHandler, openRemoteHandler } from '../lib/handler.js'
import { multipartUpload } from '../lib/s3-upload.js'
import { loadOptional, loadRunJob } from '../lib/optional.js'
import type { PoolAccess, Task, TaskOutcome } from './protocol.js'

/** the client `connectXapi` (test helper) returns: a connected `xen-api` client */
interface ConnectedXapi extends XapiClient {
  readonly sessionId: string
  disconnect(): Promise<unknown>
}
type ConnectXapi = (pool: PoolAccess) => Promise<ConnectedXapi>

const loadConnectXapi = () => loadOptional<ConnectXapi>('test/helpers/pool.ts', 'connectXapi')

/**
 * A reporter that prints nothing and notes when the snapshot step reported its snapshot taken
 * (ms after `start`): the part of our run the pool spends in `VM.snapshot`, give or take the
 * few records read before it.
 */
class SnapshotTimingReporter implements RunReporter {
  readonly #start: number
  snapshotMs: number | undefined
  constructor(start: number) {
    this.#start = start
  }
  info(message: string): void {
    if (this.snapshotMs === undefined && /^snapshot ".*" taken$/.test(message)) this.snapshotMs = performance.now() - this.#start
  }
  warning(): void {}
  child(): RunReporter {
    return this
  }
  progress(): void {}
  end(): void {}
}

/** the newest snapshot of a VDI: the reference of the next delta */
function newestSnapshotOf(xapi: XapiClient, vdi: XapiRecord): XapiRecord {
  const snapshots = Object.values(xapi.objects.all).filter(
    record => record.$type === 'VDI' && record['snapshot_of'] === vdi.$ref && record['is_a_snapshot'] === true,
  )
  const newest = snapshots.sort((a, b) => String(a['snapshot_time']).localeCompare(String(b['snapshot_time']))).pop()
  if (newest === undefined) throw new Error(`VDI ${vdi.uuid} has no snapshot to export a delta from`)
  return newest
}

function httpGetToFile(url: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, response => {
      if (response.statusCode !== 200) {
        response.resume()
        reject(new Error(`GET ${new URL(url).pathname}: HTTP ${response.statusCode}`))
        return
      }
      let bytes = 0
      response.on('data', (chunk: Buffer) => (bytes += chunk.length))
      pipeline(response, createWriteStream(file, { flags: 'wx' })).then(() => resolve(bytes), reject)
    }).on('error', reject)
  })
}

function httpGetToS3(url: string, task: Extract<Task, { kind: 'raw-export' }>): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, response => {
      if (response.statusCode !== 200) {
        response.resume()
        reject(new Error(`GET ${new URL(url).pathname}: HTTP ${response.statusCode}`))
        return
      }
      let bytes = 0
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length
          callback(null, chunk)
        },
      })
      response.on('error', error => counted.destroy(error))
      multipartUpload(task.upload!, response.pipe(counted)).then(() => resolve(bytes), reject)
    }).on('error', reject)
  })
}

/**
 * Snapshots the VM (not timed), then times a plain HTTP GET of the disk's delta between the new
 * snapshot and the newest older one (the backup's reference) into a file, flushed. The snapshot
 * VM is left for the caller to destroy (its uuid is in `detail.snapshotVm`).
 */
export async function measureRawExport(task: Extract<Task, { kind: 'raw-export' }>): Promise<TaskOutcome> {
  const connectXapi = await loadConnectXapi()
  if (!connectXapi.ok) return { ok: false, skipped: true, reason: connectXapi.reason }
  const xapi = await connectXapi.value(task.pool)
  try {
    const vm = xapi.getObjectByUuid(task.vm)
    const vdi = xapi.getObjectByUuid(task.vdi)
    const base = task.referenceOnly === true ? undefined : newestSnapshotOf(xapi, vdi)
    const snapshotStart = performance.now()
    const snapshotVm = await xapi.call<string>('VM.snapshot', vm.$ref, 'benchmark raw export')
    const snapshotMs = performance.now() - snapshotStart
    const snapshotRecord = await xapi.getRecord<{ uuid: string; VBDs: string[] }>('VM', snapshotVm)
    let snapshotVdi: string | undefined
    for (const vbd of snapshotRecord.VBDs) {
      const { VDI } = await xapi.getRecord<{ VDI: string }>('VBD', vbd)
      if (VDI === NULL_REF) continue
      const record = await xapi.getRecord<{ snapshot_of: string }>('VDI', VDI)
      if (record.snapshot_of === vdi.$ref) snapshotVdi = VDI
    }
    if (snapshotVdi === undefined) throw new Error(`the snapshot of VM ${task.vm} has no copy of VDI ${task.vdi}`)
    if (base === undefined) return { ok: true, result: { ms: 0, peakRssMiB: peakRssMiB(), detail: { snapshotVm: snapshotRecord.uuid, snapshotMs } } }
    const query = new URLSearchParams({ format: 'vhd', vdi: snapshotVdi, base: base.$ref, session_id: xapi.sessionId })
    const start = performance.now()
    const url = `${task.pool.url}/export_raw_vdi/?${query}`
    let bytes: number
    if (task.upload !== undefined) {
      bytes = await httpGetToS3(url, task)
    } else {
      bytes = await httpGetToFile(url, task.output)
      const file = await open(task.output, 'r')
      await file.sync()
      await file.close()
    }
    const ms = performance.now() - start
    return { ok: true, result: { ms, peakRssMiB: peakRssMiB(), bytes, detail: { snapshotVm: snapshotRecord.uuid, snapshotMs } } }
  } finally {
    await xapi.disconnect()
  }
}

export async function measureRunJob(task: Extract<Task, { kind: 'run-job' }>): Promise<TaskOutcome> {
  const [runJob, connectXapi] = await Promise.all([loadRunJob(), loadConnectXapi()])
  if (!runJob.ok) return { ok: false, skipped: true, reason: runJob.reason }
  if (!connectXapi.ok) return { ok: false, skipped: true, reason: connectXapi.reason }
  const xapi = await connectXapi.value(task.pool)
  const remote = task.remoteUrl === undefined ? await openLocalHandler(task.remoteRoot) : await openRemoteHandler(task.remoteUrl)
  try {
    const start = performance.now()
    const cpuAtStart = process.cpuUsage()
    const reporter = new SnapshotTimingReporter(start)
    const vms = task.vms ?? [task.vm]
    const result = await runJob.value(
      {
        id: task.jobId,
        name: 'benchmark',
        vms,
        remoteId: 'benchmark-remote',
        retention: task.retention,
        concurrency: task.concurrency ?? 1,
        ...(task.transport === undefined ? {} : { transport: task.transport }),
        ...(task.nbdConnections === undefined ? {} : { nbdConnections: task.nbdConnections }),
      },
      {
        getXapi: async () => xapi,
        getRemoteHandler: async () => remote.handler,
        reporter,
        settings: { useVhdDirectory: task.useVhdDirectory },
      },
    )
    const ms = performance.now() - start
    const cpu = process.cpuUsage(cpuAtStart)
    const failed = result.vms.find(vm => vm.status !== 'success')
    if (result.status !== 'success' || result.vms.length !== vms.length) {
      throw new Error(`backup run ${result.status}: ${failed?.error ?? 'no VM result'}`)
    }
    const disks = result.vms.flatMap(vm => vm.disks)
    return {
      ok: true,
      result: {
        ms,
        peakRssMiB: peakRssMiB(),
        bytes: disks.reduce((sum, disk) => sum + disk.size, 0),
        detail: {
          modes: disks.map(disk => disk.mode),
          // the transfer step alone (each disk's stream into its VHD on the remote)
          transferMs: disks.reduce((sum, disk) => sum + disk.durationMs, 0),
          restorePoint: result.vms[0]?.restorePoint,
          // this process's CPU time (user + system) during the run: ours, all threads
          cpuMs: (cpu.user + cpu.system) / 1000,
          ...(reporter.snapshotMs === undefined ? {} : { snapshotMs: reporter.snapshotMs }),
        },
      },
    }
  } finally {
    await remote.dispose()
    await xapi.disconnect()
  }
}
