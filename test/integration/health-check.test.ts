/**
 * Health checks as an administrator runs them with xo-cli (xo-lib here), through the host double
 * and the simulated pool: a restore point restored to an SR, started without network, its guest
 * tools awaited, then destroyed; a guest that never boots fails with a timeout; a cancelled
 * check; every case leaves the pool as it found it and is in the run history and XO's tasks.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'

import { readFile } from 'node:fs/promises'

import { REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startPluginWorld, until, type PluginWorld } from '../helpers/plugin-world.js'
import type { SimulatedPool } from '../helpers/pool.js'

interface CheckView {
  readonly status: string
  readonly vm: string
  readonly vmName?: string
  readonly restorePoint: string
  readonly sr: string
  readonly restoredVm?: string
  readonly bootMs?: number
  readonly guestTools?: string
  readonly code?: string
  readonly error?: string
  readonly taskId?: string
}
interface RunRecordView {
  readonly kind?: string
  readonly status: string
  readonly taskId?: string
  readonly healthCheck?: CheckView
  readonly error?: { readonly message: string; readonly code?: string }
  readonly log: readonly { readonly message: string; readonly scope: readonly string[] }[]
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined
}

/** what a pool holds: the uuids of its VMs, disks, drives, interfaces and guest metrics */
function inventory(pool: SimulatedPool): Record<string, string[]> {
  const classes = ['VM', 'VDI', 'VBD', 'VIF', 'VM_guest_metrics', 'VM_metrics']
  return Object.fromEntries(classes.map(cls => [cls, pool.sim.all(cls).map(record => record.uuid).sort()]))
}


describe('health check through the host double (continuousDelta.healthCheck)', function () {
  let world: PluginWorld
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remote: string
  let vm1: string
  let job: string
  let point: string

  before(async function () {
    world = await startPluginWorld('health-check')
    ;({ pool, host } = world)
    remote = world.remote
    admin = world.admin
    vm1 = pool.sim.findVm('vm1').uuid
    job = await call<string>('createJob', { name: 'Checked', vms: [vm1], remote })
    const run = await call<{ status: string; vms: { restorePoint?: string }[] }>('runJob', { id: job })
    assert.equal(run.status, 'success')
    point = run.vms[0]!.restorePoint!
  })

  after(async function () {
    await world?.close()
  })

  const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)
  const newestRecord = async (): Promise<RunRecordView> => (await call<RunRecordView[]>('getRuns', { job, limit: 1 }))[0]!

  it('restores the newest restore point, starts it without network, waits for its guest tools, destroys it', async function () {
    const before = inventory(pool)
    const started = pool.sim.guests.started.length
    const check = await call<CheckView>('healthCheck', { job, vm: vm1, sr: pool.sim.defaultSr() })
    assert.equal(check.status, 'success', JSON.stringify(check))
    assert.equal(check.restorePoint, point, 'the newest restore point by default')
    assert.equal(check.vmName, 'vm1')
    assert.equal(check.guestTools, '7.30.0')
    assert.equal(typeof check.bootMs, 'number')
    // the copy really was started, with no network interface (XO's rule: never beside production)
    const boots = pool.sim.guests.started.slice(started)
    assert.equal(boots.length, 1)
    assert.equal(boots[0]!.uuid, check.restoredVm)
    assert.deepEqual(boots[0]!.vifs, [], 'started with its interfaces destroyed')
    assert.match(boots[0]!.name, /^\[Health Check\] vm1 \(/)
    // nothing left behind: the same VMs, disks, drives, interfaces and metrics as before
    assert.deepEqual(inventory(pool), before)

    const record = await newestRecord()
    assert.equal(record.kind, 'healthCheck')
    assert.equal(record.status, 'success')
    assert.equal(record.healthCheck?.guestTools, '7.30.0')
    assert.ok(record.log.some(entry => /guest tools 7\.30\.0 reported/.test(entry.message)), JSON.stringify(record.log))
    // XO's task of the check, as Settings → Tasks (REST /rest/v0/tasks) shows it
    const task = host.app.tasks.get(check.taskId!)
    assert.equal(task.status, 'success')
    assert.equal(task.properties['type'], 'backup.vm.healthCheck')
    assert.equal(task.properties['name'], 'health check of VM "vm1"')
    assert.deepEqual(
      (task.tasks ?? []).map(child => [child.properties['name'], child.status]),
      [
        ['restore', 'success'],
        ['vmstart', 'success'],
      ]
    )
  })

  it('a guest that never boots fails with a clear timeout error, and leaves nothing on the pool', async function () {
    const before = inventory(pool)
    pool.sim.guests.neverReportNextStart()
    await assert.rejects(call('healthCheck', { job, vm: vm1, restorePoint: point, sr: pool.sim.defaultSr(), timeout: 1 }), (error: Error) => {
      assert.equal(field(field(error, 'data'), 'code'), 'HEALTH_CHECK_TIMEOUT', JSON.stringify(field(error, 'data')))
      assert.match(error.message, /health check of VM "vm1": VM "vm1" restored from .* started, but its guest tools did not report within 1 s \(the timeout\)/)
      return true
    })
    assert.deepEqual(inventory(pool), before)
    const record = await newestRecord()
    assert.equal(record.status, 'failure')
    assert.equal(record.healthCheck?.code, 'HEALTH_CHECK_TIMEOUT')
    assert.match(record.error?.message ?? '', /guest tools did not report/)
  })

  it('a check cancelled from its task while the copy runs destroys the copy', async function () {
    const before = inventory(pool)
    pool.sim.guests.neverReportNextStart()
    const started = pool.sim.guests.started.length
    const checking = call('healthCheck', { job, vm: vm1, sr: pool.sim.defaultSr(), timeout: 3600 })
    checking.catch(() => {})
    await until('the copy to start', () => (pool.sim.guests.started.length > started ? true : undefined))
    // a second operation of the job meanwhile is refused in our words
    await assert.rejects(call('runJob', { id: job }), (error: Error) => /busy with a health check/.test(error.message))
    const task = await until('the task of the check', () =>
      host.app.tasks.list(log => log.properties['type'] === 'backup.vm.healthCheck' && log.status === 'pending')[0]
    )
    host.app.tasks.abort(task.id)
    await assert.rejects(checking, (error: Error) => field(field(error, 'data'), 'code') === 'CANCELLED')
    assert.deepEqual(inventory(pool), before)
    assert.equal((await newestRecord()).status, 'cancelled')
  })

  it('refuses what cannot be checked, in words, before anything is restored', async function () {
    const calls = pool.sim.calls.length
    await assert.rejects(call('healthCheck', { job, vm: vm1 }), /job "Checked" has no health check SR: give sr=/)
    const vm2 = pool.sim.findVm('vm2').uuid
    await assert.rejects(call('healthCheck', { job, vm: vm2, sr: pool.sim.defaultSr() }), /job "Checked" has no restore point of VM .* on its remote/)
    await assert.rejects(call('healthCheck', { job, vm: vm1, sr: 'no-such-sr' }), /SR no-such-sr is not on any connected pool/)
    assert.equal(pool.sim.calls.slice(calls).filter(record => record.method.startsWith('VM.') || record.method.startsWith('VDI.')).length, 0)
  })

  describe('per job: every N runs', function () {
    let every: string
    const system = (): string => pool.sim.vdisOf(vm1)[0]!.uuid
    interface BackupLogTask {
      readonly message: string
      readonly status: string
      readonly data: Record<string, unknown>
      readonly result?: Record<string, unknown>
      readonly tasks?: BackupLogTask[]
    }
    interface BackupLogView {
      readonly jobName?: string
      readonly start: number
      readonly status: string
      readonly tasks?: BackupLogTask[]
    }
    interface RunView {
      readonly status: string
      readonly vms: readonly { readonly status: string; readonly error?: string; readonly restorePoint?: string; readonly healthCheck?: CheckView }[]
    }
    const mails = async (): Promise<{ subject: string; markdown: string }[]> => {
      const text = await readFile(join(host.dataDir, 'transport-email', 'sent.ndjson'), 'utf8').catch(() => '')
      return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as { subject: string; markdown: string })
    }
    /** the VMs and disks that are not snapshots: a copy left behind would be among them */
    const live = (): string[] => [
      ...pool.sim.all('VM').filter(record => record.is_a_snapshot !== true).map(record => `VM ${record.name_label}`),
      ...pool.sim.all('VDI').filter(record => record.is_a_snapshot !== true).map(record => `VDI ${record.uuid}`),
    ].sort()

    before(async function () {
      await host.app.loadPluginPackage(join(REPO_ROOT, 'test', 'fixtures', 'transport-plugins', 'xo-server-transport-email'))
      every = await call<string>('createJob', {
        name: 'Checked every 2',
        vms: [vm1],
        remote,
        healthCheckEvery: 2,
        healthCheckSr: pool.sim.defaultSr(),
        reportWhen: 'always',
        reportRecipients: ['admin@example.org'],
      })
    })

    async function run(): Promise<RunView> {
      await pool.sim.writeGuest(system(), 0, Buffer.from(`run at ${Math.random()}`))
      return call<RunView>('runJob', { id: every })
    }

    it('checks on run 2, not on 1 and 3; the result is in the run, the backup log and the report', async function () {
      const before = live()
      const runs: RunView[] = []
      for (let index = 0; index < 3; index++) runs.push(await run())
      assert.deepEqual(runs.map(view => view.status), ['success', 'success', 'success'])
      assert.deepEqual(runs.map(view => view.vms[0]!.healthCheck?.status), [undefined, 'success', undefined])
      // the restore point checked is the one the run wrote
      assert.equal(runs[1]!.vms[0]!.healthCheck?.restorePoint, runs[1]!.vms[0]!.restorePoint)
      assert.deepEqual(live(), before, 'no copy left behind')

      const records = await call<{ number?: number; result?: RunView }[]>('getRuns', { job: every })
      assert.deepEqual(records.map(record => record.number), [3, 2, 1])
      assert.equal(records[1]!.result?.vms[0]!.healthCheck?.guestTools, '7.30.0')

      // Backup → Logs: the VM's task has a "health check" task (restore, vmstart), as XO's has
      const logs = Object.values(await admin.call<Record<string, BackupLogView>>('backupNg.getAllLogs'))
        .filter(log => log.jobName === 'Checked every 2')
        .sort((a, b) => a.start - b.start)
      const checks = logs.map(log => log.tasks?.[0]?.tasks?.find(task => task.message === 'health check'))
      assert.deepEqual(checks.map(check => check?.status), [undefined, 'success', undefined])
      assert.deepEqual(checks[1]?.tasks?.map(task => [task.message, task.status]), [
        ['restore', 'success'],
        ['vmstart', 'success'],
      ])
      assert.equal(checks[1]?.result?.['guestTools'], '7.30.0')

      const reports = await mails()
      assert.equal(reports.length, 3)
      assert.match(reports[1]!.markdown, /- \*\*Health check\*\*: passed ✔: restored to SR .*, started, guest tools 7\.30\.0 reported after/)
      assert.doesNotMatch(reports[0]!.markdown, /Health check/)
    })

    it("the plugin's test form health-checks a job's VMs with Health check instead (Settings → Plugins → Test plugin)", async function () {
      const before = live()
      // resolves (XO's button shows a tick) once every check passed
      await admin.call('plugin.test', { id: 'continuous-delta', data: { job: 'checked every 2', healthCheck: true } })
      const [record] = await call<RunRecordView[]>('getRuns', { job: every, limit: 1 })
      assert.equal(record?.kind, 'healthCheck')
      assert.deepEqual([record?.healthCheck?.vmName, record?.status, record?.healthCheck?.guestTools], ['vm1', 'success', '7.30.0'])
      assert.deepEqual(live(), before)
      // a job without a health check SR: the alert says what to do
      await assert.rejects(
        admin.call('plugin.test', { id: 'continuous-delta', data: { job: 'Checked', healthCheck: true } }),
        /job "Checked" has no Health check SR: choose one in the job's settings above/
      )
    })

    it('a check that fails fails its VM in the run, keeps the restore point, leaves nothing, and says why', async function () {
      await call('editJob', { id: every, healthCheckTimeout: 1 })
      const before = live()
      // run 4: checked, and its copy never boots
      pool.sim.guests.neverReportNextStart()
      const failed = await run()
      assert.equal(failed.status, 'failure')
      const [vm] = failed.vms
      assert.equal(vm?.status, 'failure')
      assert.equal(vm?.healthCheck?.code, 'HEALTH_CHECK_TIMEOUT')
      assert.match(vm?.error ?? '', /health check of VM "vm1": .*guest tools did not report within 1 s/)
      const points = await call<{ id: string }[]>('listRestorePoints', { remote, vm: vm1 })
      assert.ok(points.some(point => point.id === vm?.restorePoint), 'the restore point written stays')
      assert.deepEqual(live(), before, 'no copy left behind')
      const reports = await mails()
      assert.match(reports.at(-1)!.subject, /failure/)
      assert.match(reports.at(-1)!.markdown, /- \*\*Health check\*\*: failed ✖: HEALTH_CHECK_TIMEOUT: health check of VM "vm1"/)
    })
  })
})
