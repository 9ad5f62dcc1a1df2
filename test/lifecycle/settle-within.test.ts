import assert from 'node:assert/strict'
import { BackupError } from '../../src/errors.js'
import { settleWithin } from '../../src/lifecycle/settle-within.js'

describe('settleWithin', () => {
  it('gives the value of a promise that settles in time', async () => {
    assert.deepEqual(await settleWithin(Promise.resolve(42), 1000), { settled: true, value: 42 })
  })

  it('rethrows a rejection that comes in time', async () => {
    await assert.rejects(settleWithin(Promise.reject(new Error('VDI_IO_ERROR')), 1000), /VDI_IO_ERROR/)
  })

  it('stops waiting after the delay', async () => {
    const start = Date.now()
    assert.deepEqual(await settleWithin(new Promise(() => {}), 30), { settled: false })
    assert.ok(Date.now() - start < 1000)
  })

  it('rejects with CANCELLED as soon as the signal is aborted', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 10)
    await assert.rejects(settleWithin(new Promise(() => {}), 10_000, controller.signal), (error: unknown) => error instanceof BackupError && error.code === 'CANCELLED')
  })
})
