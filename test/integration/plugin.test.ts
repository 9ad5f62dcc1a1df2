/**
 * The plugin as xo-server runs it: the BUILT plugin (dist/) loaded by the host double, its API
 * called over WebSocket with xo-lib, backing up VMs of the simulated pool to a file remote.
 * Build first: `npx tsc -p tsconfig.json`.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import sinon from 'sinon'

import type { HostDouble, XoClient } from '../helpers/host.js'
import { startPluginWorld, until, type PluginWorld } from '../helpers/plugin-world.js'
import type { SimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024
const JOB_TYPE = 'continuousDeltaBackup'

interface DiskView {
  readonly vdi: string
  readonly name: string
  readonly mode: 'full' | 'delta'
  readonly size: number
}
interface RunView {
  readonly id: string
  readonly status: string
  readonly taskId?: string
  readonly vms: readonly { readonly vm: string; readonly status: string; readonly disks: readonly DiskView[]; readonly excluded: readonly { readonly name: string }[] }[]
}
interface JobView {
  readonly id: string
  readonly name: string
  readonly vms: readonly string[]
  readonly remote: string
  readonly retention?: number
  readonly enabled: boolean
  readonly schedule?: { readonly cron: string; readonly timezone: string }
}
interface PointView {
  readonly id: string
  readonly vm: string
  readonly timestamp: number
  readonly disks: readonly { readonly vdi: string; readonly name: string; readonly differencing: boolean }[]
}
interface RunRecordView {
  readonly jobId: string
  readonly trigger: string
  readonly status: string
  readonly log: readonly { readonly message: string }[]
}

async function rejectsWith(promise: Promise<unknown>, ...fragments: string[]): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Error, String(error))
    for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" should say "${fragment}"`)
    return true
  })
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined
}


describe('plugin through the host double', function () {
  let world: PluginWorld
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remoteDir: string
  let remote: string
  let vm1: string
  let vm2: string
  let system: string

  before(async function () {
    world = await startPluginWorld('plugin')
    ;({ pool, host, remoteDir } = world)
    const [first] = host.remoteIds
    assert.ok(first)
    remote = first
    admin = world.admin
    vm1 = pool.sim.findVm('vm1').uuid
    vm2 = pool.sim.findVm('vm2').uuid
    const [systemVdi] = pool.sim.vdisOf(vm1)
    assert.ok(systemVdi)
    system = systemVdi.uuid
  })

  after(async function () {
    await world?.close()
  })

  const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)

  async function storedJobs(): Promise<readonly unknown[]> {
    const { configuration } = await host.app.getPlugin('continuous-delta')
    const jobs = configuration?.['jobs']
    return Array.isArray(jobs) ? jobs : []
  }

  it('is loaded under its package name, its methods admin-only', async function () {
    assert.equal(host.pluginId, 'continuous-delta')
    const user = await host.signIn('user@example.net', 'user')
    try {
      await assert.rejects(user.call('continuousDelta.getJobs'))
      await assert.rejects(user.call('continuousDelta.createJob', { name: 'x', vms: [vm1], remote }))
    } finally {
      await user.close()
    }
    assert.deepEqual(await call('getJobs'), [])
  })

  it('refuses bad input with a clear error and creates nothing', async function () {
    const good = { name: 'Nightly', vms: [vm1], remote }
    const disabled = await host.addRemote('old nas', `file://${remoteDir}`)
    await host.setRemote(disabled, { enabled: false })
    await rejectsWith(call('createJob', { ...good, vms: [vm1, '00000000-0000-4000-8000-000000000000'] }), '00000000-0000-4000-8000-000000000000', 'not on any connected pool')
    await rejectsWith(call('createJob', { ...good, remote: 'no-such-remote' }), 'no-such-remote', 'does not exist')
    await rejectsWith(call('createJob', { ...good, remote: disabled }), disabled, 'disabled')
    await rejectsWith(call('createJob', { ...good, retention: 0 }), 'retention')
    await rejectsWith(call('createJob', { ...good, retention: -2 }), 'retention')
    await rejectsWith(call('createJob', { ...good, retention: 1e9 }), 'retention')
    await rejectsWith(call('createJob', { ...good, schedule: { cron: '0 25 * * *' } }), 'cron', '0 25 * * *')
    await rejectsWith(call('createJob', { ...good, schedule: { cron: '0 2 * * *', timezone: 'Europe/Atlantis' } }), 'timezone', 'Europe/Atlantis')
    await rejectsWith(call('createJob', { ...good, name: '../../etc' }), 'name')
    await rejectsWith(call('createJob', { ...good, name: 'a<b>' }), 'name')
    await rejectsWith(call('editJob', { id: 'nope', retention: 3 }), 'nope')
    await rejectsWith(call('runJob', { id: 'nope' }), 'nope')
    await rejectsWith(call('deleteJob', { id: 'nope' }), 'nope')
    await rejectsWith(call('listRestorePoints', { remote: disabled }), 'disabled')
    assert.deepEqual(await call('getJobs'), [])
    assert.deepEqual(await storedJobs(), [])
    assert.deepEqual(await host.app.getAllJobs(JOB_TYPE), [])
  })

  let jobId: string
  const hashes: string[] = []

  it('creates a job into the plugin configuration, with one XO job', async function () {
    jobId = await call<string>('createJob', { name: 'Nightly', vms: [vm1], remote, retention: 5, enabled: false })
    const jobs = await call<JobView[]>('getJobs')
    assert.deepEqual(jobs, [{ id: jobId, name: 'Nightly', vms: [vm1], remote, retention: 5, enabled: false }])
    assert.deepEqual(await storedJobs(), jobs)
    const xoJobs = await host.app.getAllJobs(JOB_TYPE)
    assert.deepEqual(xoJobs.map(job => [job.name, job.continuousDeltaJobId]), [['Nightly', jobId]])
  })

  it('runs a disabled job on demand: a full, then deltas of what the guest wrote', async function () {
    const progress = new Map<string, number[]>()
    const unwatch = host.app.tasks.watch((_log, event) => {
      if (event.type === 'property' && event.name === 'progress' && typeof event.value === 'number') {
        progress.set(event.id, [...(progress.get(event.id) ?? []), event.value])
      }
    })
    const first = await call<RunView>('runJob', { id: jobId }).finally(unwatch)
    assert.equal(first.status, 'success')
    // the disk transfer's progress advanced step by step with the bytes moved, up to 100
    const steps = [...progress.values()].sort((a, b) => b.length - a.length)[0] ?? []
    assert.ok(steps.length >= 3, `progress steps: ${JSON.stringify(steps)}`)
    assert.deepEqual(steps, [...steps].sort((a, b) => a - b))
    assert.equal(steps[steps.length - 1], 100)
    const [vmRun] = first.vms
    assert.equal(vmRun?.vm, vm1)
    assert.deepEqual(vmRun?.disks.map(disk => [disk.name, disk.mode]), [['system', 'full']])
    assert.deepEqual(vmRun?.excluded.map(disk => disk.name), ['[NOBAK] scratch'])
    hashes.push(await pool.sim.hashVdi(system))

    await pool.sim.writeGuest(system, 5 * MiB, randomBytes(256 * 1024))
    const second = await call<RunView>('runJob', { id: jobId })
    const [delta] = second.vms[0]?.disks ?? []
    assert.equal(delta?.mode, 'delta')
    assert.ok(delta !== undefined && delta.size < 8 * MiB, `a delta moves the changed blocks only (${delta?.size} bytes)`)
    hashes.push(await pool.sim.hashVdi(system))

    // the run is an XO task with a subtask per VM, holding one per disk transfer
    assert.ok(second.taskId !== undefined)
    const task = host.app.tasks.get(second.taskId)
    assert.equal(task.status, 'success')
    const vmTask = task.tasks?.[0]
    assert.ok(vmTask !== undefined, 'a subtask per VM')
    assert.ok((vmTask.tasks ?? []).length >= 1, 'a subtask per disk transfer')

    // and appears in XO's backup logs (xo-server's rule), its tree the task's
    const logs = Object.values(host.app.getBackupNgLogs()).filter(log => log.jobName === 'Nightly')
    const log = logs.at(-1)
    assert.equal(log?.status, 'success')
    assert.ok((log?.tasks ?? []).length >= 1, 'the run has the task tree')
  })

  it('lists, verifies and restores through the API, bytes equal to the guest disk at run time', async function () {
    const points = await call<PointView[]>('listRestorePoints', { remote, vm: vm1 })
    assert.equal(points.length, 2)
    assert.ok(points[0]!.timestamp < points[1]!.timestamp, 'oldest first')
    const report = await call<{ ok: boolean }>('verify', { remote })
    assert.equal(report.ok, true, JSON.stringify(report))

    for (const [index, point] of points.entries()) {
      const newVm = await call<string>('restore', { remote, restorePoint: point.id, sr: pool.sim.defaultSr() })
      assert.notEqual(newVm, vm1)
      const [restoredDisk] = pool.sim.vdisOf(newVm)
      assert.ok(restoredDisk)
      assert.equal(await pool.sim.hashVdi(restoredDisk.uuid), hashes[index], `restore point ${index}`)
    }
    await rejectsWith(call('restore', { remote, restorePoint: points[0]!.id, sr: '00000000-0000-4000-8000-000000000000' }), 'SR')
    await rejectsWith(call('restore', { remote, restorePoint: '../../../etc/passwd', sr: pool.sim.defaultSr() }), 'not a restore point id')
    await rejectsWith(call('restore', { remote, restorePoint: points[0]!.id.replace(/\d{8}T/, '19990101T'), sr: pool.sim.defaultSr() }), 'no restore point')
  })

  it('a job edited in the form is what runs: lower retention merges the oldest points', async function () {
    const { configuration } = await host.app.getPlugin('continuous-delta')
    assert.ok(configuration !== undefined)
    const jobs = (await storedJobs()).map(job => (typeof job === 'object' && job !== null ? { ...job, retention: 1 } : job))
    await admin.call('plugin.configure', { id: 'continuous-delta', configuration: { ...configuration, jobs } })
    assert.equal((await call<JobView[]>('getJobs'))[0]?.retention, 1)

    await pool.sim.writeGuest(system, 9 * MiB, randomBytes(128 * 1024))
    const run = await call<RunView>('runJob', { id: jobId })
    assert.equal(run.status, 'success')
    const hash = await pool.sim.hashVdi(system)
    const points = await call<PointView[]>('listRestorePoints', { remote, vm: vm1 })
    assert.equal(points.length, 1, 'retention 1 keeps one restore point')
    const newVm = await call<string>('restore', { remote, restorePoint: points[0]!.id, sr: pool.sim.defaultSr() })
    assert.equal(await pool.sim.hashVdi(pool.sim.vdisOf(newVm)[0]!.uuid), hash)
    assert.equal((await call<{ ok: boolean }>('verify', { remote, vm: vm1 })).ok, true)
  })

  it('a job added in the form gets an id, written back to the configuration', async function () {
    const { configuration } = await host.app.getPlugin('continuous-delta')
    assert.ok(configuration !== undefined)
    await admin.call('plugin.configure', {
      id: 'continuous-delta',
      configuration: { ...configuration, jobs: [...(await storedJobs()), { name: 'From the form', vms: [vm2], remote }] },
    })
    const added = await until('the form job id written back', async () => {
      const job = (await storedJobs()).find(job => field(job, 'name') === 'From the form')
      const id = field(job, 'id')
      return typeof id === 'string' ? id : undefined
    })
    assert.ok((await call<JobView[]>('getJobs')).some(job => job.id === added))
    await call('deleteJob', { id: added })
    assert.ok(!(await call<JobView[]>('getJobs')).some(job => job.id === added))
    assert.ok(!(await host.app.getAllJobs(JOB_TYPE)).some(job => job.continuousDeltaJobId === added))
  })

  it('fires a scheduled job from its cron', async function () {
    // the scheduler has minute granularity: the clock is put two seconds before a minute
    const now = new Date()
    const nextMinute = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), now.getUTCHours(), now.getUTCMinutes() + 1))
    const clock = sinon.useFakeTimers({ now: nextMinute.getTime() - 2000, toFake: ['Date'], shouldAdvanceTime: true })
    try {
      const scheduled = await call<string>('createJob', { name: 'Every minute', vms: [vm2], remote, schedule: { cron: '* * * * *', timezone: 'Europe/Paris' }, enabled: true })
      const run = await until(
        'the scheduled run',
        async () => (await call<RunRecordView[]>('getRuns')).find(run => run.jobId === scheduled && run.status !== 'running'),
        30_000
      )
      assert.equal(run.trigger, 'schedule')
      assert.equal(run.status, 'success', JSON.stringify(run.log))
      await call('editJob', { id: scheduled, enabled: false })
      const schedules = (await host.app.getAllSchedules()).filter(schedule => schedule.name === 'Every minute')
      assert.deepEqual(schedules.map(schedule => schedule.enabled), [false])
    } finally {
      clock.restore()
    }
  })

  it('aborting the run\'s task in XO cancels the run', async function () {
    pool.sim.faults.stallExport(60_000)
    try {
      const running = call<RunView>('runJob', { id: jobId })
      running.catch(() => {})
      const taskId = await until('the run task', async () => {
        const [run] = await call<(RunRecordView & { taskId?: string })[]>('getRuns', { job: jobId })
        return run?.status === 'running' ? run.taskId : undefined
      })
      host.app.tasks.abort(taskId, 'stop')
      await rejectsWith(running, 'cancelled')
      const [run] = await call<RunRecordView[]>('getRuns', { job: jobId })
      assert.equal(run?.status, 'cancelled')
    } finally {
      pool.sim.faults.reset()
    }
    assert.equal((await call<{ ok: boolean }>('verify', { remote })).ok, true)
  })

  it('unload cancels a run in progress, leaves nothing half-written and no schedule firing', async function () {
    await call('editJob', { id: jobId, schedule: { cron: '0 3 * * *' }, enabled: true })
    assert.ok(host.app.activeScheduleCount >= 1)
    const before = await call<PointView[]>('listRestorePoints', { remote })

    pool.sim.faults.stallExport(60_000)
    const running = call<RunView>('runJob', { id: jobId })
    running.catch(() => {})
    await until('the run to start', async () => ((await call<RunRecordView[]>('getRuns', { job: jobId }))[0]?.status === 'running' ? true : undefined))
    await admin.call('plugin.unload', { id: 'continuous-delta' })
    await assert.rejects(running)
    pool.sim.faults.reset()

    assert.equal(host.app.activeScheduleCount, 0)
    assert.deepEqual(await host.app.getAllJobs(JOB_TYPE), [])
    await assert.rejects(call('getJobs'))

    // the remote holds exactly the restore points it had, and they verify
    await admin.call('plugin.load', { id: 'continuous-delta' })
    assert.deepEqual((await call<PointView[]>('listRestorePoints', { remote })).map(point => point.id), before.map(point => point.id))
    assert.equal((await call<{ ok: boolean }>('verify', { remote })).ok, true)
    assert.ok(host.app.activeScheduleCount >= 1, 'load brings the schedules back')
  })
})
