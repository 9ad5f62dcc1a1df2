/**
 * Runs are in XO's backup logs (issue 12, item 2), as `backupNg.getAllLogs` (Backup → Logs) shows
 * them by xo-server 5.207's rule, read with xo-lib from the host double: each run with its tree
 * (the VM by name → snapshot → each disk's transfer with its size and duration → merge), its infos
 * (retention, [NOBAK]), and its status (a VM that failed fails the run, with the error).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { startHostDouble } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024

interface LogTask {
  readonly message: string
  readonly data: Record<string, unknown>
  readonly status: string
  readonly start: number
  readonly end?: number
  readonly result?: { readonly size?: number; readonly message?: string }
  readonly infos?: readonly { readonly message: string }[]
  readonly warnings?: readonly { readonly message: string }[]
  readonly tasks?: readonly LogTask[]
}
interface BackupLog {
  readonly id: string
  readonly jobName?: string
  readonly message: string
  readonly status: string
  readonly start: number
  readonly end?: number
  readonly tasks?: readonly LogTask[]
}

describe('runs in XO backup logs (backupNg.getAllLogs)', function () {
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remoteDir: string
  let remote: string

  before(async function () {
    pool = await startSimulatedPool()
    remoteDir = await mkdtemp(join(tmpdir(), 'backup-logs-remote-'))
    host = await startHostDouble({ pools: [pool], remotes: [{ name: 'nas', url: `file://${remoteDir}` }] })
    remote = host.remoteIds[0]!
    admin = await host.signIn()
  })

  after(async function () {
    await host?.close()
    await pool?.close()
    if (remoteDir !== undefined) await rm(remoteDir, { recursive: true, force: true })
  })

  async function logsOf(jobName: string): Promise<BackupLog[]> {
    const logs = await admin.call<Record<string, BackupLog>>('backupNg.getAllLogs')
    return Object.values(logs)
      .filter(log => log.jobName === jobName)
      .sort((a, b) => a.start - b.start)
  }

  it('shows each run with its tree: VM by name, snapshot, each transfer with size and duration, merge, retention', async function () {
    const vm = pool.sim.findVm('vm1')
    const [system] = pool.sim.vdisOf(vm.uuid)
    assert.ok(system)
    const id = await admin.call<string>('continuousDelta.createJob', { name: 'Logged', vms: [vm.uuid], remote, retention: 1 })
    await admin.call('continuousDelta.runJob', { id })
    await pool.sim.writeGuest(system.uuid, 3 * MiB, randomBytes(512 * 1024))
    await admin.call('continuousDelta.runJob', { id })

    const runs = await logsOf('Logged')
    assert.equal(runs.length, 2, 'both runs are kept')
    for (const run of runs) {
      assert.equal(run.message, 'backup')
      assert.equal(run.status, 'success')
      assert.ok(run.end !== undefined && run.end >= run.start)
      const [vmTask, ...others] = run.tasks ?? []
      assert.equal(others.length, 0)
      assert.ok(vmTask)
      assert.equal(vmTask.message, 'VM "vm1"')
      assert.equal(vmTask.data['type'], 'VM')
      assert.equal(vmTask.data['id'], vm.uuid)
      assert.equal(vmTask.status, 'success')
      const messages = (vmTask.tasks ?? []).map(task => task.message)
      assert.deepEqual(messages.filter(message => message !== 'transfer'), ['snapshot', 'merge'])
      const transfers = (vmTask.tasks ?? []).filter(task => task.message === 'transfer')
      assert.deepEqual(transfers.map(task => task.data['disk']), ['system'], 'the [NOBAK] disk is not transferred')
      for (const transfer of transfers) {
        assert.equal(transfer.status, 'success')
        assert.ok(typeof transfer.result?.size === 'number' && transfer.result.size > 0, 'size, for the speed XO shows')
        assert.ok(transfer.end !== undefined && transfer.end >= transfer.start, 'duration')
      }
      assert.ok((vmTask.infos ?? []).some(info => info.message.includes('[NOBAK] scratch')), 'the left-out disk is said')
    }
    const [first, second] = runs
    assert.equal(first?.tasks?.[0]?.tasks?.find(task => task.message === 'transfer')?.data['mode'], 'full')
    assert.equal(second?.tasks?.[0]?.tasks?.find(task => task.message === 'transfer')?.data['mode'], 'delta')
    const merge = second?.tasks?.[0]?.tasks?.find(task => task.message === 'merge')
    assert.ok((merge?.result?.size ?? 0) > 0, 'the second run merged past retention 1')
    assert.ok((second?.tasks?.[0]?.infos ?? []).some(info => /retention 1: 1 restore point/.test(info.message)))
  })

  it('a run whose VM failed is a failed run, with the error on the VM and on its snapshot', async function () {
    const vm = pool.sim.findVm('vm2')
    const id = await admin.call<string>('continuousDelta.createJob', { name: 'Failing', vms: [vm.uuid], remote })
    pool.sim.faults.failNextCall('VM.snapshot', 'SR_BACKEND_FAILURE_44', ['', 'There is insufficient space'])
    await admin.call('continuousDelta.runJob', { id }).catch(() => undefined)
    const [run] = await logsOf('Failing')
    assert.ok(run)
    assert.equal(run.status, 'failure')
    const [vmTask] = run.tasks ?? []
    assert.equal(vmTask?.message, 'VM "vm2"')
    assert.equal(vmTask?.status, 'failure')
    assert.match(vmTask?.result?.message ?? '', /SR_BACKEND_FAILURE_44|insufficient space/)
    assert.equal(vmTask?.tasks?.find(task => task.message === 'snapshot')?.status, 'failure')
  })
})
