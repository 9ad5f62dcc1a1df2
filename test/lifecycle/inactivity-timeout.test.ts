import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { watchInactivity } from '../../src/lifecycle/inactivity-timeout.js'

describe('watchInactivity', () => {
  it('expires once after the given silence; each touch restarts the count', async () => {
    let expired = 0
    const start = Date.now()
    let expiredAfter = 0
    const watchdog = watchInactivity(250, () => {
      expired++
      expiredAfter = Date.now() - start
    })
    // activity every 50 ms for 250 ms: never 250 ms of silence
    for (let i = 0; i < 5; i++) {
      await sleep(50)
      watchdog.touch()
    }
    assert.equal(expired, 0)
    await sleep(450)
    assert.equal(expired, 1)
    assert.ok(expiredAfter >= 250 + 250 - 20, `expired after ${expiredAfter} ms`)
    // a touch after expiry does not re-arm it
    watchdog.touch()
    await sleep(200)
    assert.equal(expired, 1)
    watchdog.stop()
  })

  it('never expires once stopped', async () => {
    let expired = false
    const watchdog = watchInactivity(50, () => void (expired = true))
    watchdog.stop()
    await sleep(120)
    assert.equal(expired, false)
  })
})
