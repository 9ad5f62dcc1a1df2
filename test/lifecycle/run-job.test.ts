import assert from 'node:assert/strict'
import { runJob } from '../../src/lifecycle/run-job.js'
import { createBackupLifecycle } from '../../src/lifecycle/run-vm.js'
import { openRemote } from '../helpers/remotes.js'
import type { TestRemote } from '../helpers/remotes.js'
import { RecordingReporter } from './harness.js'
import { FakeXapi } from './fake-xapi.js'

const vmUuid = (n: number): string => `7d0c1e2f-0000-4000-8000-${String(n).padStart(12, '0')}`

/** a pool whose master runs `version`, and nothing else */
function poolAt(version: string): FakeXapi {
  const xapi = new FakeXapi()
  const host = xapi.add('host', { name_label: 'master', software_version: { product_version: version, product_brand: 'XCP-ng' } })
  xapi.update(xapi.pool.$ref, () => ({ master: host.$ref, default_SR: 'OpaqueRef:NULL' }))
  return xapi
}

describe('runJob', () => {
  let remote: TestRemote

  before(async () => {
    remote = await openRemote('file')
  })

  after(async () => {
    await remote?.close()
  })

  const job = (vms: readonly string[], concurrency: number) => ({
    id: 'job-1',
    name: 'nightly',
    vms,
    remoteId: 'r1',
    retention: 3,
    concurrency,
  })

  it('runs at most `concurrency` VMs at once, through hooks other code registered; a failing VM does not stop the others', async () => {
    const xapi = poolAt('8.2.1')
    let running = 0
    let peak = 0
    const seen: string[] = []
    const lifecycle = createBackupLifecycle().addHook('checkPool', 'audit', async ctx => {
      running++
      peak = Math.max(peak, running)
      await new Promise(resolve => setTimeout(resolve, 30))
      running--
      seen.push(ctx.vmUuid)
      if (ctx.vmUuid === vmUuid(2)) {
        throw new Error('audit refused')
      }
      // stop the others here too, with a distinct error: this test is about the runner
      throw new Error('stop')
    })
    const vms = [1, 2, 3, 4, 5].map(vmUuid)
    const reporter = new RecordingReporter()
    const result = await runJob(
      job(vms, 2),
      { getXapi: async () => xapi, getRemoteHandler: async () => remote.handler, reporter },
      { lifecycle }
    )
    assert.equal(peak, 2)
    assert.deepEqual(seen.sort(), [...vms].sort())
    assert.equal(result.status, 'failure')
    assert.deepEqual(
      result.vms.map(vm => vm.vm),
      vms,
      'results in the order of the job'
    )
    assert.match(result.vms[1]!.error ?? '', /checkPool \(hook audit\): audit refused/)
    assert.match(result.vms[0]!.error ?? '', /checkPool \(hook audit\): stop/)
    assert.equal(reporter.ended.filter(entry => entry.status === 'failure').length, 5)
  })

  it('refuses a pool too old before any hook after the gate', async () => {
    const xapi = poolAt('6.2.0')
    const after: string[] = []
    const lifecycle = createBackupLifecycle().addHook('checkPool', 'after-gate', ctx => void after.push(ctx.vmUuid))
    const result = await runJob(
      job([vmUuid(9)], 1),
      { getXapi: async () => xapi, getRemoteHandler: async () => remote.handler, reporter: new RecordingReporter() },
      { lifecycle }
    )
    assert.equal(result.status, 'failure')
    assert.match(result.vms[0]!.error ?? '', /pool-gate.*6\.2\.0/)
    assert.deepEqual(after, [])
  })

  it('starts no VM once cancelled, and reports each as cancelled', async () => {
    const controller = new AbortController()
    controller.abort()
    const result = await runJob(job([vmUuid(1), vmUuid(2)], 1), {
      getXapi: async () => poolAt('8.2.1'),
      getRemoteHandler: async () => remote.handler,
      reporter: new RecordingReporter(),
      signal: controller.signal,
    })
    assert.equal(result.status, 'failure')
    for (const vm of result.vms) {
      assert.match(vm.error ?? '', /cancelled/)
    }
  })
})
