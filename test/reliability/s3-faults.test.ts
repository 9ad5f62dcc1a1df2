/**
 * A block PUT failing on S3 while other blocks of the same VHD directory are in flight: the run
 * fails saying why, nothing half-written is left (no restore point, no VHD, no block object), the
 * reference does not move, and the next run is a delta that restores byte-exact.
 */
import assert from 'node:assert/strict'
import type { JobRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { listDiskVhds } from '../../src/repository/chain.js'
import { diskDir } from '../../src/repository/layout.js'
import { openRemote } from '../helpers/remotes.js'
import type { TestRemote } from '../helpers/remotes.js'
import { MiB, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { faultyHandler } from './faulty-handler.js'
import { RestorePointLedger } from './ledger.js'
import { SeededRandom } from './random.js'

const DISK_SIZE = 24 * MiB
const BLOCK = 2 * MiB

/** every object under `dir` (S3 lists prefixes), paths relative to the remote root */
async function objectsUnder(handler: TestRemote['handler'], dir: string): Promise<string[]> {
  const out: string[] = []
  for (const name of await handler.list(dir).catch(() => [] as string[])) {
    const path = `${dir}/${name}`
    const below = await objectsUnder(handler, path)
    out.push(...(below.length > 0 ? below : [path]))
  }
  return out.sort()
}

describe('reliability: a VHD directory block PUT failing on S3 with blocks in flight', function () {
  // s3rver is slow on a loaded machine: a hang guard, not a time bound
  this.timeout(600_000)
  let harness: Harness
  let s3: TestRemote
  let vm: string
  let disk: string
  let ledger: RestorePointLedger
  const random = new SeededRandom(0x53_fa17)

  before(async function () {
    harness = await startHarness()
    s3 = await openRemote('s3')
    harness.handler = s3.handler
    const created = harness.pool.sim.createVm({ name: 'on s3', disks: [{ name: 'disk', size: DISK_SIZE }] })
    vm = created.vm
    disk = created.vdis[0]!
    ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-1', handler: () => s3.handler })
  })

  after(async function () {
    await harness?.close()
    await s3?.close()
  })

  const run = (): Promise<JobRunResult> => runJob(harness.job([vm]), harness.env())
  const changeBlocks = async (blocks: readonly number[]): Promise<void> => {
    for (const block of blocks) await harness.pool.sim.writeGuest(disk, block * BLOCK + random.int(0, 64) * 4096, random.bytes(64 * 1024))
  }

  it('fails the run cleanly, then the next run is a delta that restores', async function () {
    await changeBlocks([0, 3, 5, 8])
    await ledger.succeed(run)
    const dir = diskDir(vm, 'job-1', disk)
    const before = await objectsUnder(s3.handler, dir)

    // the delta's block writes: the first two are held until both are in flight, the third fails
    await changeBlocks([1, 2, 4, 6, 7, 9, 10])
    let started = 0
    let inFlightTogether = false
    let bothStarted: () => void = () => {}
    const together = new Promise<void>(resolve => (bothStarted = resolve))
    harness.handler = faultyHandler(s3.handler, async ({ path }) => {
      if (!/\/blocks\/\d+\/\d+$/.test(path)) return
      const n = ++started
      if (n === 2) {
        inFlightTogether = true
        bothStarted()
      }
      if (n <= 2) {
        // a hang guard only: block writes one at a time would never reach the second
        await Promise.race([together, new Promise(resolve => setTimeout(resolve, 60_000))])
        return
      }
      if (n === 3) throw Object.assign(new Error('InternalError: We encountered an internal error. Please try again.'), { code: 'InternalError', $metadata: { httpStatusCode: 500 } })
    })
    const attempt = await ledger.attempt(run)
    harness.handler = s3.handler
    assert.ok(inFlightTogether, 'two block writes of the VHD directory were in flight at once')
    assert.ok(started >= 3)
    const result = attempt.result!.vms[0]!
    assert.equal(result.status, 'failure')
    assert.match(result.error ?? '', /InternalError/)
    assert.deepEqual(attempt.committed, [])
    RestorePointLedger.assertReferenceUnchanged(attempt)
    // nothing of the failed VHD is left: every object under the disk's folder is one the full wrote
    assert.deepEqual(await objectsUnder(s3.handler, dir), before)
    assert.equal((await listDiskVhds(s3.handler, dir)).length, 1)
    await ledger.assertRestorable()

    await changeBlocks([11])
    const next = await ledger.succeed(run)
    assert.deepEqual(next.result!.vms[0]!.disks.map(d => d.mode), ['delta'])
    await ledger.assertRestorable()
  })
})
