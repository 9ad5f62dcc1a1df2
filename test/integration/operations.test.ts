/**
 * Day-to-day operations as an administrator does them with xo-cli (xo-lib here), through the
 * host double and the simulated pool: deleting one restore point, forgetting a VM, deleting a
 * job (its reference snapshots go, its backups stay unless asked), the run history per job with
 * filters, a second run of a running job refused in our words, a lowered retention logged as
 * what it is, and XO's restore listing refreshed after each change.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'

import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startPluginWorld, until, type PluginWorld } from '../helpers/plugin-world.js'
import type { SimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024

interface RunView {
  readonly status: string
  readonly taskId?: string
  readonly vms: readonly { readonly vm: string; readonly status: string; readonly restorePoint?: string; readonly disks: readonly { readonly mode: string }[] }[]
}
interface RunRecordView {
  readonly id: string
  readonly jobId: string
  readonly start: number
  readonly status: string
  readonly taskId?: string
  readonly result?: { readonly vms: readonly { readonly vm: string }[] }
  readonly log: readonly { readonly message: string }[]
}
interface PointView {
  readonly id: string
  readonly vm: string
  readonly jobId: string
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined
}

async function rejectsWith(promise: Promise<unknown>, code: string | undefined, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Error, String(error))
    for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" should say "${fragment}"`)
    if (code !== undefined) assert.equal(field(field(error, 'data'), 'code'), code, JSON.stringify(field(error, 'data')))
    return true
  })
}


describe('operations through the host double', function () {
  let world: PluginWorld
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remoteDir: string
  let remote: string
  let vm1: string
  let vm2: string
  let system: string
  let disk2: string

  before(async function () {
    world = await startPluginWorld('operations')
    ;({ pool, host, remoteDir } = world)
    remote = world.remote
    admin = world.admin
    vm1 = pool.sim.findVm('vm1').uuid
    vm2 = pool.sim.findVm('vm2').uuid
    system = pool.sim.vdisOf(vm1)[0]!.uuid
    disk2 = pool.sim.vdisOf(vm2)[0]!.uuid
  })

  after(async function () {
    await world?.close()
  })

  const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)
  const points = (vm: string): Promise<PointView[]> => call<PointView[]>('listRestorePoints', { remote, vm })
  const restoredHash = async (point: string): Promise<string> => {
    const newVm = await call<string>('restore', { remote, restorePoint: point, sr: pool.sim.defaultSr() })
    return pool.sim.hashVdi(pool.sim.vdisOf(newVm)[0]!.uuid)
  }
  /** what XO's Backup → Restore view lists for a VM (XO caches it a minute per remote) */
  const xoListing = async (vm: string): Promise<string[]> => {
    const listing = await admin.call<Record<string, Record<string, { id: string }[]>>>('backupNg.listVmBackups', { remotes: [remote] })
    return (listing[remote]?.[vm] ?? []).map(backup => backup.id.slice(remote.length + 1)).sort()
  }
  const referenceSnapshots = (vm: string, jobId: string): string[] =>
    pool.sim
      .all('VM')
      .filter(record => record.is_a_snapshot === true)
      .filter(record => {
        const config = record.other_config as Record<string, string>
        return config[BACKUP_KEYS.vm] === vm && config[BACKUP_KEYS.job] === jobId
      })
      .map(record => record.uuid)

  let jobA: string
  const hashes: string[] = []
  const ids: string[] = []

  async function runA(offset: number): Promise<RunView> {
    await pool.sim.writeGuest(system, offset, randomBytes(128 * 1024))
    const run = await call<RunView>('runJob', { id: jobA })
    assert.equal(run.status, 'success')
    hashes.push(await pool.sim.hashVdi(system))
    ids.push(run.vms[0]!.restorePoint!)
    return run
  }

  it("XO's restore listing shows a run's restore point right after the run", async function () {
    jobA = await call<string>('createJob', { name: 'Nightly A', vms: [vm1], remote, retention: 4 })
    assert.deepEqual(await xoListing(vm1), [])
    await runA(1 * MiB)
    // without the plugin dropping XO's cache, the view would list nothing for a minute
    assert.deepEqual(await xoListing(vm1), [ids[0]])
  })

  it('a second run of a running job is refused naming the job, with a code', async function () {
    pool.sim.faults.stallExport(60_000)
    try {
      const running = call<RunView>('runJob', { id: jobA })
      running.catch(() => {})
      const taskId = await until('the run task', async () => {
        const [run] = await call<RunRecordView[]>('getRuns', { job: jobA, limit: 1 })
        return run?.status === 'running' ? run.taskId : undefined
      })
      await rejectsWith(call('runJob', { id: jobA }), 'JOB_RUNNING', 'job "Nightly A" is already running')
      // deleting it meanwhile is refused the same way
      await rejectsWith(call('deleteJob', { id: jobA }), 'JOB_RUNNING', 'Nightly A')
      host.app.tasks.abort(taskId, 'stop')
      await assert.rejects(running, /cancelled/)
    } finally {
      pool.sim.faults.reset()
    }
  })

  it('the transfer inactivity timeout is a setting of the form, in seconds, and is what a transfer is held to', async function () {
    const plugin = await host.app.getPlugin('continuous-delta')
    const property = field(field(plugin.configurationSchema, 'properties'), 'transferTimeoutSeconds')
    assert.match(String(field(property, 'title')), /\(seconds\)/)
    const configuration = plugin.configuration ?? {}
    await admin.call('plugin.configure', { id: 'continuous-delta', configuration: { ...configuration, transferTimeoutSeconds: 5 } })
    pool.sim.faults.stallExport(60_000)
    try {
      const run = await call<RunView & { vms: { error?: string }[] }>('runJob', { id: jobA })
      assert.equal(run.status, 'failure')
      assert.match(run.vms[0]?.error ?? '', /received no data for 5 s/)
    } finally {
      pool.sim.faults.reset()
      await admin.call('plugin.configure', { id: 'continuous-delta', configuration: { ...(await host.app.getPlugin('continuous-delta')).configuration, transferTimeoutSeconds: 600 } })
    }
  })

  it("a delta's transfer progress is measured against the blocks it carries, not the disk's size", async function () {
    const progress = new Map<string, number[]>()
    const unwatch = host.app.tasks.watch((_log, event) => {
      if (event.type === 'property' && event.name === 'progress' && typeof event.value === 'number') {
        progress.set(event.id, [...(progress.get(event.id) ?? []), event.value])
      }
    })
    // one 2 MiB block of a 64 MiB disk changes
    const run = await runA(2 * MiB).finally(unwatch)
    assert.deepEqual(run.vms[0]?.disks.map(disk => disk.mode), ['delta'])
    const steps = [...progress.values()].sort((a, b) => b.length - a.length)[0] ?? []
    const beforeEnd = steps.filter(value => value < 100)
    // against the virtual size the block would show as 3 %, then a jump to 100
    assert.ok(Math.max(...beforeEnd) >= 50, `progress steps: ${JSON.stringify(steps)}`)
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b))
  })

  it('deletes any restore point: one between two others is merged into the next, the full into the next; the others stay restorable', async function () {
    await runA(3 * MiB)
    await runA(3 * MiB + 512 * 1024)
    assert.deepEqual((await points(vm1)).map(point => point.id), ids)
    assert.deepEqual(await xoListing(vm1), [...ids].sort())

    // one between two others: its delta is merged into the next one, which keeps its bytes
    const [middle] = ids.splice(1, 1)
    hashes.splice(1, 1)
    const between = await call<{ merges: { mergedPath: string }[]; wasNewest: boolean }>('deleteRestorePoint', { remote, restorePoint: middle })
    assert.equal(between.merges.length, 1, JSON.stringify(between))
    assert.equal(between.wasNewest, false)
    assert.deepEqual((await points(vm1)).map(point => point.id), ids)
    assert.deepEqual(await xoListing(vm1), [...ids].sort(), "XO's listing follows at once")
    for (const [i, id] of ids.entries()) assert.equal(await restoredHash(id), hashes[i], id)
    assert.equal((await call<{ ok: boolean }>('verify', { remote, vm: vm1 })).ok, true)

    // the full: merged into the next restore point, which becomes the full
    const oldest = await call<{ merges: unknown[]; wasNewest: boolean }>('deleteRestorePoint', { remote, restorePoint: ids[0] })
    assert.ok(oldest.merges.length >= 1, JSON.stringify(oldest))
    assert.equal(oldest.wasNewest, false)
    assert.deepEqual((await points(vm1)).map(point => point.id), [ids[1], ids[2]])
    assert.deepEqual(await xoListing(vm1), [ids[1], ids[2]].sort(), "XO's listing follows at once")
    assert.equal(await restoredHash(ids[1]!), hashes[1])
    assert.equal(await restoredHash(ids[2]!), hashes[2])
    assert.equal((await call<{ ok: boolean }>('verify', { remote, vm: vm1 })).ok, true)

    // the chain goes on with a delta on what is left
    const next = await runA(4 * MiB)
    assert.deepEqual(next.vms[0]?.disks.map(disk => disk.mode), ['delta'])
    assert.equal(await restoredHash(ids[3]!), hashes[3])
    assert.equal(await restoredHash(ids[2]!), hashes[2])

    // the newest: gone; the job's next run of the VM exports full disks
    const newest = await call<{ wasNewest: boolean }>('deleteRestorePoint', { remote, restorePoint: ids[3] })
    assert.equal(newest.wasNewest, true)
    assert.deepEqual((await points(vm1)).map(point => point.id), [ids[1], ids[2]])
    assert.equal(await restoredHash(ids[2]!), hashes[2])

    await rejectsWith(call('deleteRestorePoint', { remote, restorePoint: '../../etc/passwd' }), 'RESTORE_POINT_NOT_FOUND', 'not a restore point id')
    await rejectsWith(call('deleteRestorePoint', { remote, restorePoint: ids[3] }), 'RESTORE_POINT_NOT_FOUND', 'no restore point')
  })

  it('a lowered retention is logged as the retention it is, not as a recovery', async function () {
    await runA(5 * MiB)
    assert.equal((await points(vm1)).length, 3)
    await call('editJob', { id: jobA, retention: 1 })
    await runA(6 * MiB)
    const [run] = await call<RunRecordView[]>('getRuns', { job: jobA, limit: 1 })
    const messages = run?.log.map(entry => entry.message) ?? []
    assert.ok(messages.some(message => /^retention 1: 2 restore point\(s\) past it removed before this run/.test(message)), messages.join('\n'))
    assert.ok(!messages.some(message => /interrupted merge/.test(message)), messages.join('\n'))
    const kept = await points(vm1)
    assert.deepEqual(kept.map(point => point.id), [ids.at(-1)])
    assert.equal(await restoredHash(ids.at(-1)!), hashes.at(-1))
  })

  let jobB: string
  it('deleting a job destroys its reference snapshots and keeps its restore points', async function () {
    jobB = await call<string>('createJob', { name: 'Weekly B', vms: [vm2], remote })
    await pool.sim.writeGuest(disk2, 1 * MiB, randomBytes(64 * 1024))
    const run = await call<RunView>('runJob', { id: jobB })
    assert.equal(run.status, 'success')
    const hash = await pool.sim.hashVdi(disk2)
    assert.equal(referenceSnapshots(vm2, jobB).length, 1)

    const result = await call<{ snapshots: unknown[]; restorePoints: unknown[]; failures: unknown[] }>('deleteJob', { id: jobB })
    assert.deepEqual(result.failures, [])
    assert.equal(result.snapshots.length, 1)
    assert.deepEqual(referenceSnapshots(vm2, jobB), [])
    assert.ok(!(await call<{ id: string }[]>('getJobs')).some(job => job.id === jobB))
    const [point] = await points(vm2)
    assert.equal(point?.jobId, jobB)
    assert.equal(await restoredHash(point!.id), hash)
  })

  it('deleting a job with deleteBackups deletes its restore points too, and nothing of the other jobs', async function () {
    const jobC = await call<string>('createJob', { name: 'Scratch C', vms: [vm2], remote })
    assert.equal((await call<RunView>('runJob', { id: jobC })).status, 'success')
    assert.equal((await points(vm2)).length, 2)
    const result = await call<{ restorePoints: unknown[]; failures: unknown[] }>('deleteJob', { id: jobC, deleteBackups: true })
    assert.deepEqual(result.failures, [])
    assert.equal(result.restorePoints.length, 1)
    assert.deepEqual(referenceSnapshots(vm2, jobC), [])
    const left = await points(vm2)
    assert.deepEqual(left.map(point => point.jobId), [jobB])
    assert.deepEqual(await readdir(join(remoteDir, 'xo-vm-backups', vm2, 'vdis')), [jobB])
    assert.equal((await call<{ ok: boolean }>('verify', { remote, vm: vm2 })).ok, true)
  })

  it("forgets a VM's backups only when confirmed, with its jobs' reference snapshots", async function () {
    assert.equal(referenceSnapshots(vm1, jobA).length, 1)
    await rejectsWith(call('forgetVm', { remote, vm: vm1, confirm: vm2 }), 'INVALID_PARAMETER', 'confirm', 'nothing was deleted')
    assert.equal((await points(vm1)).length, 1)

    const result = await call<{ removed: unknown[]; snapshots: unknown[] }>('forgetVm', { remote, vm: vm1, confirm: vm1 })
    assert.equal(result.removed.length, 1)
    assert.equal(result.snapshots.length, 1)
    assert.deepEqual(await points(vm1), [])
    assert.deepEqual(await xoListing(vm1), [])
    assert.ok(!(await readdir(join(remoteDir, 'xo-vm-backups'))).includes(vm1), 'the VM folder is gone')
    assert.deepEqual(referenceSnapshots(vm1, jobA), [])
    assert.equal((await points(vm2)).length, 1, 'the other VM keeps its backups')

    // the job goes on: a new full
    const run = await call<RunView>('runJob', { id: jobA })
    assert.deepEqual(run.vms[0]?.disks.map(disk => disk.mode), ['full'])
    assert.equal(await restoredHash(run.vms[0]!.restorePoint!), await pool.sim.hashVdi(system))
  })

  it('keeps a run history per job, filtered by job, VM, status and date', async function () {
    const ofA = await call<RunRecordView[]>('getRuns', { job: jobA, limit: 1000 })
    assert.ok(ofA.length >= 7, `${ofA.length} runs of A`)
    assert.ok(ofA.every(run => run.jobId === jobA))
    assert.deepEqual(ofA.map(run => run.start), [...ofA.map(run => run.start)].sort((a, b) => b - a), 'newest first')
    assert.deepEqual((await call<RunRecordView[]>('getRuns', { job: jobB })).map(run => run.jobId), [jobB], 'a deleted job keeps its history')

    const ofVm2 = await call<RunRecordView[]>('getRuns', { vm: vm2 })
    assert.equal(ofVm2.length, 2)
    assert.ok(ofVm2.every(run => run.result?.vms.some(vm => vm.vm === vm2)))

    const cancelled = await call<RunRecordView[]>('getRuns', { status: 'cancelled' })
    assert.deepEqual(cancelled.map(run => run.jobId), [jobA])

    const since = ofA[2]!.start
    assert.deepEqual((await call<RunRecordView[]>('getRuns', { job: jobA, since })).map(run => run.id), ofA.slice(0, 3).map(run => run.id))
    const newest = await call<RunRecordView[]>('getRuns', { limit: 2 })
    assert.equal(newest.length, 2)
    assert.equal(newest[0]?.id, ofA[0]?.id)
    await rejectsWith(call('getRuns', { status: 'finished' }), undefined, 'invalid parameters')

    // one append-only file per job in the plugin's data dir
    const files = (await readdir(await findRunsDir(host.dataDir))).sort()
    assert.ok(files.includes(`${jobA}.jsonl`) && files.includes(`${jobB}.jsonl`), files.join(', '))
  })
})

/** the `runs` folder of the plugin's data dir, wherever the host double keeps plugin data */
async function findRunsDir(root: string): Promise<string> {
  const queue = [root]
  while (queue.length > 0) {
    const dir = queue.shift()!
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue
      const path = join(dir, entry.name)
      if (entry.name === 'runs') return path
      queue.push(path)
    }
  }
  throw new Error(`no runs folder under ${root}`)
}
