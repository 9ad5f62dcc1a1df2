/**
 * Never two writers on one chain: two runs of a job at once, two jobs on the same VM and remote,
 * and two handlers of the same remote (as two processes hold them). One run writes; the other is
 * refused with a clear error, and every restore point restores byte-exact.
 */
import assert from 'node:assert/strict'
import type { JobRunResult, VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openHandler, openRemote } from '../helpers/remotes.js'
import type { TestRemote } from '../helpers/remotes.js'
import { hashRestoredDisk, MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { RestorePointLedger } from './ledger.js'
import { SeededRandom } from './random.js'

const findingIt = process.env.RELIABILITY_FINDINGS === '1' ? it : it.skip

function onlyVm(result: JobRunResult): VmRunResult {
  assert.equal(result.vms.length, 1)
  return result.vms[0]!
}

describe('reliability: one writer per chain', function () {
  let harness: Harness
  let vm: string
  let disk: string
  const random = new SeededRandom(0xc0c0)

  before(async function () {
    harness = await startHarness()
    const created = harness.pool.sim.createVm({ name: 'shared', disks: [{ name: 'data', size: 8 * MiB }] })
    vm = created.vm
    disk = created.vdis[0]!
  })

  after(async function () {
    await harness?.close()
  })

  async function guestWrite(): Promise<void> {
    await harness.pool.sim.writeGuest(disk, random.int(0, 8 * MiB / 4096 - 16) * 4096, random.bytes(16 * 4096))
  }

  function envWith(handler: RemoteHandler) {
    return { ...harness.env(), getRemoteHandler: async () => handler }
  }

  /** runs both at once: exactly one succeeds and commits, the other is refused as CHAIN_LOCKED */
  async function assertOneWriter(ledger: RestorePointLedger, runs: [() => Promise<JobRunResult>, () => Promise<JobRunResult>]): Promise<void> {
    await guestWrite()
    let results: JobRunResult[] = []
    const attempt = await ledger.attempt(async () => {
      results = await Promise.all(runs.map(run => run()))
      return results[0]!
    })
    const vms = results.map(onlyVm)
    const statuses = vms.map(result => result.status).sort()
    assert.deepEqual(statuses, ['failure', 'success'], JSON.stringify(vms))
    const refused = vms.find(result => result.status === 'failure')!
    assert.match(refused.error ?? '', /backup chain of VM .* is being written/)
    assert.equal(attempt.committed.length, 1)
  }

  it('two runs of the same job at once: one runs, the other is refused', async function () {
    const ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-1', handler: () => harness.handler })
    await ledger.succeed(() => runJob(harness.job([vm]), harness.env()))
    await assertOneWriter(ledger, [() => runJob(harness.job([vm]), harness.env()), () => runJob(harness.job([vm]), harness.env())])
    await ledger.assertReferenceFollowsChain()
    await ledger.assertRestorable()
    await guestWrite()
    await ledger.succeed(() => runJob(harness.job([vm]), harness.env()))
    await ledger.assertRestorable()
  })

  it('two jobs on the same VM and remote at once: one runs, the other is refused', async function () {
    await guestWrite()
    const hash = await harness.pool.sim.hashVdi(disk)
    const results = await Promise.all([
      runJob(harness.job([vm]), harness.env()),
      runJob(harness.job([vm], { id: 'job-2', name: 'other' }), harness.env()),
    ])
    const vms = results.map(onlyVm)
    assert.deepEqual(vms.map(result => result.status).sort(), ['failure', 'success'], JSON.stringify(vms))
    assert.match(vms.find(result => result.status === 'failure')!.error ?? '', /backup chain of VM .* is being written/)
    // whichever ran, its newest restore point holds the guest disk
    const winner = results.find(result => result.vms[0]!.status === 'success')!
    const point = (await restorePointsOf(harness.handler, vm, winner.jobId)).at(-1)!
    assert.equal(point.id, winner.vms[0]!.restorePoint)
    assert.equal(await hashRestoredDisk(harness.handler, point, disk), hash)
  })

  it('two handlers of the same local remote (two processes): the remote lock refuses the second writer', async function () {
    const second = await openHandler(harness.remote.url)
    try {
      const ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-3', handler: () => harness.handler })
      const job = harness.job([vm], { id: 'job-3' })
      await ledger.succeed(() => runJob(job, envWith(harness.handler)))
      await assertOneWriter(ledger, [() => runJob(job, envWith(harness.handler)), () => runJob(job, envWith(second.value))])
      await ledger.assertRestorable()
    } finally {
      await second.dispose()
    }
  })

  describe('on S3', function () {
    let s3: TestRemote

    before(async function () {
      s3 = await openRemote('s3')
    })

    after(async function () {
      await s3?.close()
    })

    it('two runs through one handler: one runs, the other is refused', async function () {
      const ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-s3', handler: () => s3.handler })
      const job = harness.job([vm], { id: 'job-s3' })
      await ledger.succeed(() => runJob(job, envWith(s3.handler)))
      await assertOneWriter(ledger, [() => runJob(job, envWith(s3.handler)), () => runJob(job, envWith(s3.handler))])
      await ledger.assertRestorable()
    })

    // S3 has no lock: two processes (two handlers) write the same chain at once
    findingIt('two handlers of the same S3 remote (two processes): one runs, the other is refused', async function () {
      const other = await openHandler(s3.url)
      try {
        const ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-s3', handler: () => s3.handler })
        const job = harness.job([vm], { id: 'job-s3' })
        await ledger.succeed(() => runJob(job, envWith(s3.handler)))
        await assertOneWriter(ledger, [() => runJob(job, envWith(s3.handler)), () => runJob(job, envWith(other.value))])
      } finally {
        await other.dispose()
      }
    })
  })
})
