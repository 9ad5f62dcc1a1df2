import assert from 'node:assert/strict'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'

const NULL_REF = 'OpaqueRef:NULL'

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

describe('simulator: a guest booting', () => {
  let pool: SimulatedPool
  let xapi: Xapi

  beforeEach(async () => {
    pool = await startSimulatedPool()
    xapi = await connectXapi(pool)
  })
  afterEach(async () => {
    await xapi.disconnect()
    await pool.close()
  })

  const vm2 = async (): Promise<string> => xapi.call<string>('VM.get_by_uuid', pool.sim.findVm('vm2').uuid)

  it('VM.start: Running at once, then the guest tools report (guest metrics with PV_drivers_version); a shutdown removes them', async () => {
    const vm = await vm2()
    assert.equal(await xapi.call('VM.get_guest_metrics', vm), NULL_REF)
    await xapi.callAsync('VM.start', vm, false, false)
    assert.equal(await xapi.call('VM.get_power_state', vm), 'Running')
    const metrics = await until('the guest tools', async () => {
      const ref = await xapi.call<string>('VM.get_guest_metrics', vm)
      return ref === NULL_REF ? undefined : ref
    })
    const version = await xapi.call<Record<string, string>>('VM_guest_metrics.get_PV_drivers_version', metrics)
    assert.equal(version.major, '7')
    await xapi.callAsync('VM.hard_shutdown', vm)
    assert.equal(await xapi.call('VM.get_guest_metrics', vm), NULL_REF)
    await assert.rejects(xapi.call('VM_guest_metrics.get_record', metrics), (error: { code?: string }) => error.code === 'HANDLE_INVALID')
  })

  it('a guest that never boots: Running, and its guest metrics never appear', async () => {
    const vm = await vm2()
    pool.sim.guests.toolsDelayMs = 1
    pool.sim.guests.neverReportNextStart()
    await xapi.callAsync('VM.start', vm, false, false)
    // a VM started after it boots as usual: its tools reporting means the first one's had their chance
    const { vm: other } = pool.sim.createVm({ name: 'other', disks: [], running: false })
    const otherRef = await xapi.call<string>('VM.get_by_uuid', other)
    await xapi.callAsync('VM.start', otherRef, false, false)
    await until('the other guest tools', async () => ((await xapi.call<string>('VM.get_guest_metrics', otherRef)) === NULL_REF ? undefined : true))
    assert.equal(await xapi.call('VM.get_power_state', vm), 'Running')
    assert.equal(await xapi.call('VM.get_guest_metrics', vm), NULL_REF)
    assert.equal(pool.sim.guests.started.length, 2)
  })
})
