/** The retry layer of XAPI calls: which errors are retried, how often, how long it waits, what it does meanwhile. */
import assert from 'node:assert/strict'
import { DEFAULT_RETRY_POLICY, retryDelay, withTransientRetry } from '../../src/xapi/retry.js'
import { FakeXapi, FakeXapiError } from './fake-xapi.js'

function failing(code: string, times: number, result: unknown = 'OpaqueRef:done'): () => unknown {
  let left = times
  return () => {
    if (left-- > 0) throw new FakeXapiError(code, [])
    return result
  }
}

describe('XAPI retry layer', function () {
  it('retries TOO_MANY_PENDING_TASKS on any call, with growing delays, and returns the answer', async function () {
    const fake = new FakeXapi().answer('VM.snapshot', failing('TOO_MANY_PENDING_TASKS', 3))
    const delays: number[] = []
    const xapi = withTransientRetry(fake, { sleep: async ms => void delays.push(ms) })
    assert.equal(await xapi.callAsync('VM.snapshot', 'OpaqueRef:vm', 'name'), 'OpaqueRef:done')
    assert.deepEqual(delays, [1000, 2000, 4000])
    assert.equal(fake.calls.filter(call => call.method === 'VM.snapshot').length, 4)
  })

  it('gives up after the bound, with the last error', async function () {
    const fake = new FakeXapi().answer('VM.snapshot', failing('OTHER_OPERATION_IN_PROGRESS', 100))
    const delays: number[] = []
    const xapi = withTransientRetry(fake, { sleep: async ms => void delays.push(ms) })
    await assert.rejects(xapi.call('VM.snapshot', 'OpaqueRef:vm', 'name'), { code: 'OTHER_OPERATION_IN_PROGRESS' })
    assert.equal(fake.calls.length, DEFAULT_RETRY_POLICY.attempts)
    assert.equal(delays.length, DEFAULT_RETRY_POLICY.attempts - 1)
    assert.ok(delays.every(ms => ms <= DEFAULT_RETRY_POLICY.maxDelayMs))
    assert.equal(retryDelay(DEFAULT_RETRY_POLICY, 20), DEFAULT_RETRY_POLICY.maxDelayMs)
  })

  it('retries VDI_IN_USE on destroys only, disconnecting the disk from the control domain before each retry', async function () {
    const fake = new FakeXapi()
    const dom0 = fake.add('VM', { is_control_domain: true })
    const guest = fake.add('VM', { is_control_domain: false })
    const vdi = fake.add('VDI', {})
    const dom0Vbd = fake.add('VBD', { VM: dom0.$ref, VDI: vdi.$ref, currently_attached: true })
    const guestVbd = fake.add('VBD', { VM: guest.$ref, VDI: vdi.$ref, currently_attached: false })
    fake
      .answer('VDI.destroy', failing('VDI_IN_USE', 2, ''))
      .answer('VDI.get_VBDs', () => [dom0Vbd.$ref, guestVbd.$ref])
      .answer('VBD.get_VM', vbd => (vbd === dom0Vbd.$ref ? dom0.$ref : guest.$ref))
      .answer('VM.get_is_control_domain', vm => vm === dom0.$ref)
      .answer('VBD.get_currently_attached', vbd => vbd === dom0Vbd.$ref)
      .answer('VBD.unplug', () => '')
      .answer('VBD.destroy', () => '')
      .answer('VDI.resize', failing('VDI_IN_USE', 1, ''))
    const xapi = withTransientRetry(fake, { sleep: async () => {} })
    await xapi.callAsync('VDI.destroy', vdi.$ref)
    const methods = fake.calls.map(call => `${call.method} ${String(call.args[0] ?? '')}`)
    // each retry is preceded by unplugging and destroying the dom0 VBD; the guest's drive is left alone
    assert.equal(methods.filter(m => m === `VBD.destroy ${dom0Vbd.$ref}`).length, 2)
    assert.equal(methods.filter(m => m === `VBD.destroy ${guestVbd.$ref}`).length, 0)
    assert.equal(methods.filter(m => m.startsWith('VDI.destroy')).length, 3)
    // not a destroy: VDI_IN_USE is the caller's to handle
    await assert.rejects(xapi.call('VDI.resize', vdi.$ref, 1), { code: 'VDI_IN_USE' })
  })

  it('polls a disk in use after an export from 250 ms on, doubling, within about a minute, then gives up with VDI_IN_USE', async function () {
    const fake = new FakeXapi().answer('VDI.destroy', failing('VDI_IN_USE', 100, '')).answer('VDI.get_VBDs', () => [])
    const delays: number[] = []
    const xapi = withTransientRetry(fake, { sleep: async ms => void delays.push(ms) })
    await assert.rejects(xapi.callAsync('VDI.destroy', 'OpaqueRef:vdi'), { code: 'VDI_IN_USE' })
    assert.deepEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000, 10_000])
    assert.equal(fake.calls.filter(call => call.method === 'VDI.destroy').length, DEFAULT_RETRY_POLICY.inUse.attempts)
    // the release usually comes within a second or two: two refusals cost 0.75 s, not 3 s
    const released = new FakeXapi().answer('VDI.destroy', failing('VDI_IN_USE', 2, '')).answer('VDI.get_VBDs', () => [])
    const waited: number[] = []
    await withTransientRetry(released, { sleep: async ms => void waited.push(ms) }).callAsync('VDI.destroy', 'OpaqueRef:vdi')
    assert.deepEqual(waited, [250, 500])
  })

  it('leaves other errors alone and wraps a client only once', async function () {
    const fake = new FakeXapi().answer('VM.snapshot', failing('SR_FULL', 1))
    const delays: number[] = []
    const xapi = withTransientRetry(fake, { sleep: async ms => void delays.push(ms) })
    await assert.rejects(xapi.callAsync('VM.snapshot', 'OpaqueRef:vm', 'n'), { code: 'SR_FULL' })
    assert.deepEqual(delays, [])
    assert.equal(withTransientRetry(xapi), xapi)
    assert.equal(xapi.pool, fake.pool)
  })
})
