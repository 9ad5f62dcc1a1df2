/**
 * Progress that means something, as XO's tasks show it (Settings → Tasks, REST /rest/v0/tasks),
 * through the host double and xo-lib: the snapshot, each transfer, the merge, a restore's disks
 * and a verify report their `progress` as they go, up to 100; tasks are named by VM and disk
 * names; a failed run's result names each failure (VM, step, disk, code, message).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import type { HostDouble, XoClient } from '../helpers/host.js'
import { startPluginWorld, type PluginWorld } from '../helpers/plugin-world.js'
import type { SimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024

/** the `progress` values each task (by its path of names from the root) took, in order */
class ProgressLog {
  readonly #paths = new Map<string, string>()
  readonly #values = new Map<string, number[]>()

  record(id: string, parentId: string | undefined, name: string): void {
    const parent = parentId === undefined ? undefined : this.#paths.get(parentId)
    this.#paths.set(id, parent === undefined ? name : `${parent} › ${name}`)
  }

  progress(id: string, value: number): void {
    if (this.#paths.has(id)) this.#values.set(id, [...(this.#values.get(id) ?? []), value])
  }

  get paths(): string[] {
    return [...this.#paths.values()]
  }

  /** the progress of each task whose path matches, oldest task first */
  of(pattern: RegExp): number[][] {
    return [...this.#values.entries()].filter(([id]) => pattern.test(this.#paths.get(id)!)).map(([, values]) => values)
  }
}

function rising(values: readonly number[]): boolean {
  return values.every((value, index) => index === 0 || value >= values[index - 1]!)
}

describe('progress and failures as XO shows them', function () {
  let world: PluginWorld
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remote: string
  let vm1: string
  let vm2: string
  let system: string
  const log = new ProgressLog()

  before(async function () {
    world = await startPluginWorld('progress')
    ;({ pool, host } = world)
    remote = world.remote
    admin = world.admin
    vm1 = pool.sim.findVm('vm1').uuid
    vm2 = pool.sim.findVm('vm2').uuid
    system = pool.sim.vdisOf(vm1)[0]!.uuid
    host.app.tasks.watch((_log, event) => {
      if (event.type === 'start') log.record(event.id, event.parentId, String(event.properties?.['name'] ?? ''))
      if (event.type === 'property' && event.name === 'progress') log.progress(event.id, Number(event.value))
    })
  })

  after(async function () {
    await world?.close()
  })

  const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)

  it('a run: the snapshot by its milestones, each transfer against its bytes, the merge by its blocks, each up to 100', async function () {
    const job = await call<string>('createJob', { name: 'Progress', vms: [vm1], remote, retention: 1 })
    // 8 MiB of data in the full, four scattered blocks changed for the delta
    await pool.sim.writeGuest(system, 8 * MiB, randomBytes(8 * MiB))
    assert.equal((await call<{ status: string }>('runJob', { id: job })).status, 'success')
    // four blocks apart from each other: the merge moves them run by run
    for (const offset of [8, 12, 16, 20]) await pool.sim.writeGuest(system, offset * MiB, randomBytes(64 * 1024))
    assert.equal((await call<{ status: string }>('runJob', { id: job })).status, 'success')

    const snapshots = log.of(/^continuous delta backup Progress › VM "vm1" › snapshot$/)
    assert.equal(snapshots.length, 2)
    for (const values of snapshots) {
      assert.deepEqual(values.slice(0, 3), [0, 10, 60], JSON.stringify(values))
      assert.equal(values.at(-1), 100)
      assert.ok(rising(values))
    }
    const transfers = log.of(/^continuous delta backup Progress › VM "vm1" › transfer$/)
    assert.equal(transfers.length, 2, 'the [NOBAK] disk is not transferred')
    for (const values of transfers) {
      assert.ok(rising(values), JSON.stringify(values))
      assert.equal(values.at(-1), 100)
      assert.ok(values.some(value => value > 0 && value < 100), `a transfer moves through its bytes: ${JSON.stringify(values)}`)
    }
    const merges = log.of(/^continuous delta backup Progress › VM "vm1" › merge$/)
    const merged = merges.find(values => values.some(value => value > 0 && value < 100))
    assert.ok(merged, `the second run's merge moves through its blocks: ${JSON.stringify(merges)}`)
    assert.ok(rising(merged) && merged.at(-1) === 100, JSON.stringify(merged))
  })

  it('a restore: named by the VM and its date, each disk by its name, moving through its bytes', async function () {
    const [point] = (await call<{ id: string }[]>('listRestorePoints', { remote, vm: vm1 })).slice(-1)
    await call('restore', { remote, restorePoint: point!.id, sr: pool.sim.defaultSr() })
    const disks = log.of(/^restore of VM "vm1" \(\d{4}-\d\d-\d\dT[\d:.]+Z\) › disk "system"$/)
    assert.equal(disks.length, 1, JSON.stringify(log.paths))
    const [values] = disks
    assert.ok(rising(values!) && values!.at(-1) === 100, JSON.stringify(values))
    assert.ok(values!.some(value => value > 0 && value < 100), JSON.stringify(values))
  })

  it('a verify: a task whose progress follows the restore points checked', async function () {
    const report = await call<{ ok: boolean }>('verify', { remote })
    assert.equal(report.ok, true)
    const [values] = log.of(/^verify of remote "nas"$/)
    assert.ok(values !== undefined && rising(values) && values.at(-1) === 100, JSON.stringify(values))
    const task = host.app.tasks.list(entry => entry.properties['name'] === 'verify of remote "nas"')[0]
    assert.equal(task?.status, 'success')
    assert.equal(task?.properties['type'], 'verify.continuousDelta')
  })

  it("a failed run's result names each failure: VM, step, disk, code and message", async function () {
    const job = await call<string>('createJob', { name: 'Failing twice', vms: [vm1, vm2], remote })
    pool.sim.faults.failNextCall('VM.snapshot', 'SR_BACKEND_FAILURE_44', ['', 'There is insufficient space'])
    pool.sim.faults.failNextCall('export_raw_vdi', 'VDI_IO_ERROR', ['Device I/O errors'])
    const result = await call<{ status: string; vms: { name?: string; failureDetail?: { code: string; step?: string; disk?: string } }[] }>('runJob', { id: job })
    assert.equal(result.status, 'failure')
    const details = result.vms.map(vm => vm.failureDetail).sort((a, b) => String(a?.step).localeCompare(String(b?.step)))
    assert.deepEqual(details.map(detail => detail?.step), ['snapshot', 'transfer'], JSON.stringify(result.vms))
    assert.equal(details[0]!.code, 'SR_BACKEND_FAILURE_44', "a XAPI error's own code")
    const failedTransfer = result.vms.find(vm => vm.failureDetail?.step === 'transfer')!
    const transfer = failedTransfer.failureDetail!
    assert.equal(transfer.disk, failedTransfer.name === 'vm1' ? 'system' : 'data', 'the disk by its name')
    assert.equal(transfer.code, 'TRANSFER_FAILED')
    // the run's task (Settings → Tasks) fails with that one message, and the run history keeps it
    const runs = await call<{ taskId?: string; error?: { message: string } }[]>('getRuns', { job, limit: 1 })
    const message = host.app.tasks.get(runs[0]!.taskId!).result as { message?: string }
    for (const text of [message.message ?? '', runs[0]!.error?.message ?? '']) {
      assert.match(text, /^2 of 2 VM\(s\) failed: /)
      assert.match(text, /VM "vm[12]" \(step snapshot\): SR_BACKEND_FAILURE_44: snapshot: SR_BACKEND_FAILURE_44/)
      assert.match(text, /VM "vm[12]" \(step transfer, disk "(system|data)"\): TRANSFER_FAILED: transfer: disk "(system|data)"/)
    }
  })
})
