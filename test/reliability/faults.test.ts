/**
 * Faults during a backup run, each followed by a normal run. After every fault: no committed
 * restore point is lost and each restores byte-exact, the reference snapshot moved only with a
 * committed restore point, no VHD is left on the remote that no restore point uses, and the next
 * run succeeds on a correct chain.
 */
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import type { JobRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { listDiskVhds } from '../../src/repository/chain.js'
import { diskDir } from '../../src/repository/layout.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { connectXapi } from '../helpers/pool.js'
import type { Xapi } from '../helpers/pool.js'
import { MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { cutNextTransfer, onProfiles } from '../helpers/profiles.js'
import { faultyHandler, fsError } from './faulty-handler.js'
import type { WriteCall } from './faulty-handler.js'
import { RestorePointLedger } from './ledger.js'
import type { Attempt } from './ledger.js'
import { SeededRandom } from './random.js'
import { startTcpProxy } from './tcp-proxy.js'
import type { TcpProxy } from './tcp-proxy.js'

const DISK_SIZES = [16 * MiB, 8 * MiB]

onProfiles(({ profile, fullOnly }) => {
  describe(`reliability: faults during a run [${profile}]`, function () {
    let harness: Harness
    let remoteHandler: RemoteHandler
    let proxy: TcpProxy
    let xapi: Xapi
    let vm: string
    let disks: string[]
    let ledger: RestorePointLedger
    const random = new SeededRandom(0x5eed_fa17)

    before(async function () {
      harness = await startHarness({ profile })
      remoteHandler = harness.handler
      const created = harness.pool.sim.createVm({
        name: 'fragile',
        disks: DISK_SIZES.map((size, i) => ({ name: `disk ${i}`, size, bootable: i === 0 })),
      })
      vm = created.vm
      disks = created.vdis
      // the client the runs use reaches the pool through a relay that a test can cut
      proxy = await startTcpProxy(harness.pool.url)
      xapi = await connectXapi({ ...harness.pool, url: proxy.url })
      ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks, jobId: 'job-1', handler: () => remoteHandler })
      await guestWrites(8)
    })

    after(async function () {
      await xapi?.disconnect()
      await proxy?.close()
      await harness?.close()
    })

    afterEach(function () {
      harness.pool.sim.faults.reset()
      harness.handler = remoteHandler
      proxy.restore()
    })

    async function guestWrites(count: number): Promise<void> {
      for (let i = 0; i < count; i++) {
        const disk = random.int(0, disks.length)
        const length = random.int(1, 256) * 512
        const offset = random.int(0, (DISK_SIZES[disk]! - length) / 512) * 512
        await harness.pool.sim.writeGuest(disks[disk]!, offset, random.bytes(length))
      }
    }

    function run(signal?: AbortSignal): Promise<JobRunResult> {
      const env = harness.env(undefined, signal === undefined ? {} : { signal })
      return runJob(harness.job([vm]), { ...env, getXapi: async () => xapi })
    }

    /** VHDs on the remote that no restore point refers to */
    async function orphanVhds(): Promise<string[]> {
      const used = new Set((await restorePointsOf(remoteHandler, vm, 'job-1')).flatMap(point => point.disks.map(disk => disk.vhd)))
      const all = (await Promise.all(disks.map(vdi => listDiskVhds(remoteHandler, diskDir(vm, 'job-1', vdi))))).flat()
      return all.filter(path => !used.has(path))
    }

    function vmResult(attempt: Attempt) {
      assert.equal(attempt.error, undefined, `runJob threw: ${String(attempt.error)}`)
      assert.equal(attempt.result?.vms.length, 1)
      return attempt.result!.vms[0]!
    }

    /** the run failed, committed nothing, moved no reference; everything committed before still restores */
    async function assertFailedCleanly(attempt: Attempt, error: RegExp): Promise<void> {
      const result = vmResult(attempt)
      assert.equal(result.status, 'failure')
      assert.match(result.error ?? '', error)
      assert.deepEqual(attempt.committed, [])
      RestorePointLedger.assertReferenceUnchanged(attempt)
      assert.deepEqual(await orphanVhds(), [])
      await ledger.assertRestorable()
    }

    /** after a fault: the guest changes, the next run succeeds as a delta and every restore point restores */
    async function assertRecovers(mode: 'delta' | 'full' = 'delta'): Promise<void> {
      harness.handler = remoteHandler
      proxy.restore()
      await guestWrites(4)
      const attempt = await ledger.succeed(() => run())
      assert.deepEqual(vmResult(attempt).disks.map(disk => disk.mode), disks.map(() => mode))
      assert.deepEqual(await orphanVhds(), [])
      await ledger.assertRestorable()
    }

    it('a first full, then a delta, restore byte-exact', async function () {
      const first = await ledger.succeed(() => run())
      assert.deepEqual(vmResult(first).disks.map(disk => disk.mode), ['full', 'full'])
      await assertRecovers('delta')
    })

    for (const [where, bytes] of [
      ['inside the VHD footer', 300],
      ['inside the VHD header', 512 + 700],
      ['inside the block table', 512 + 1024 + 100],
      ['inside a data block', 512 + 1024 + 512 + 1 * MiB + 12_345],
    ] as const) {
      fullOnly(`an export cut ${where} (after ${bytes} bytes) fails the run cleanly`, async function () {
        await guestWrites(4)
        harness.pool.sim.faults.cutExportAfter(bytes)
        await assertFailedCleanly(await ledger.attempt(() => run()), /transfer|export|socket|aborted|closed|premature|terminated|end/i)
        await assertRecovers()
      })
    }

    // An error of the export body while the VHD parser awaits a remote write (between two reads)
    // must not go unheard: the export's stream has an error listener from the start.
    it('an export cut on the second disk commits nothing of the first', async function () {
      await guestWrites(4)
      // disks are exported one after the other: once the first disk's VHD is being written, its
      // export is under way, and the cut armed then hits the second disk's export
      const sim = harness.pool.sim
      let started = 0
      harness.handler = faultyHandler(remoteHandler, ({ path }) => {
        if (path.includes(`/${disks[0]}/`) && started++ === 0) cutNextTransfer(sim, 512 + 1024 + 512 + 4096)
      })
      const attempt = await ledger.attempt(() => run())
      sim.faults.reset()
      await assertFailedCleanly(attempt, /transfer|export|socket|aborted|closed|premature|terminated|end/i)
      await assertRecovers()
    })

    fullOnly('a stalled export is interrupted by cancelling the run, without waiting for it', async function () {
      await guestWrites(4)
      const stallMs = 6_000
      harness.pool.sim.faults.stallExport(stallMs)
      const controller = new AbortController()
      const timer = setTimeout(() => controller.abort(), 500)
      const start = Date.now()
      const attempt = await ledger.attempt(() => run(controller.signal))
      clearTimeout(timer)
      assert.ok(Date.now() - start < stallMs / 2, `the run took ${Date.now() - start} ms`)
      await assertFailedCleanly(attempt, /cancel|abort/i)
      await assertRecovers()
    })

    fullOnly('an export that stalls for a while still lands intact', async function () {
      await guestWrites(4)
      harness.pool.sim.faults.stallExport(800)
      await assertRecovers()
    })

    fullOnly('VM.snapshot failing with SR_FULL fails the run, nothing written', async function () {
      await guestWrites(4)
      harness.pool.sim.faults.failNextCall('VM.snapshot', 'SR_FULL', ['OpaqueRef:sr'])
      await assertFailedCleanly(await ledger.attempt(() => run()), /SR_FULL/)
      await assertRecovers()
    })

    it('the session lost in the middle of a transfer: the client logs in again and the run succeeds', async function () {
      await guestWrites(4)
      let lost = false
      harness.handler = faultyHandler(remoteHandler, () => {
        if (!lost) {
          lost = true
          harness.pool.sim.faults.loseSession()
        }
      })
      const attempt = await ledger.succeed(() => run())
      assert.ok(lost)
      assert.deepEqual(vmResult(attempt).disks.map(disk => disk.mode), ['delta', 'delta'])
      await ledger.assertRestorable()
    })

    fullOnly('the pool master unreachable for a while in the middle of a transfer: nothing lost, the next run succeeds', async function () {
      await guestWrites(4)
      let cut = false
      let back: NodeJS.Timeout | undefined
      harness.handler = faultyHandler(remoteHandler, ({ path }) => {
        if (!cut && path.includes('/vdis/')) {
          cut = true
          proxy.cut()
          // while it is away, the run may wait on an XAPI task: it comes back after a while
          back = setTimeout(() => proxy.restore(), 3_000)
        }
      })
      const attempt = await ledger.attempt(() => run())
      clearTimeout(back)
      proxy.restore()
      assert.ok(cut)
      const result = vmResult(attempt)
      // the export may have been cut (a failure) or already received (the run then completes)
      assert.equal(attempt.committed.length, result.status === 'success' ? 1 : 0, JSON.stringify(result))
      if (result.status === 'failure') RestorePointLedger.assertReferenceUnchanged(attempt)
      assert.deepEqual(await orphanVhds(), [])
      await ledger.assertRestorable()
      // a snapshot the failed run could not destroy is neither a base nor kept by the next run
      await assertRecovers()
    })

    fullOnly('the remote full (ENOSPC) during a transfer fails the run cleanly', async function () {
      await guestWrites(4)
      harness.handler = faultyHandler(remoteHandler, ({ method, path }) => {
        if (path.includes('/vdis/') && /^(outputStream|writeFile|write|outputFile)$/.test(method)) {
          throw fsError('ENOSPC', 'no space left on device', path)
        }
      })
      await assertFailedCleanly(await ledger.attempt(() => run()), /ENOSPC|no space/i)
      await assertRecovers()
    })

    fullOnly('the remote full (ENOSPC) when the metadata is written fails the run cleanly', async function () {
      await guestWrites(4)
      // the metadata goes to a temporary file first, renamed into place
      let failed = false
      harness.handler = faultyHandler(remoteHandler, ({ method, path }) => {
        if (method === 'outputFile' && path.includes('.json')) {
          failed = true
          throw fsError('ENOSPC', 'no space left on device', path)
        }
      })
      await assertFailedCleanly(await ledger.attempt(() => run()), /ENOSPC|no space/i)
      assert.ok(failed)
      await assertRecovers()
    })

    fullOnly('a read-only remote fails the run before anything is written', async function () {
      await guestWrites(4)
      const calls: WriteCall[] = []
      harness.handler = faultyHandler(remoteHandler, call => {
        calls.push(call)
        throw fsError('EROFS', 'read-only file system', call.path)
      })
      await assertFailedCleanly(await ledger.attempt(() => run()), /EROFS|read-only/i)
      assert.ok(calls.length > 0)
      await assertRecovers()
    })

    fullOnly('the remote folder removed in the middle of a transfer: the run fails, the next one starts a new full', async function () {
      await guestWrites(4)
      const root = harness.remote.path
      assert.ok(root !== undefined)
      let removed = false
      harness.handler = faultyHandler(remoteHandler, async ({ path }) => {
        if (!removed && path.includes('/vdis/')) {
          removed = true
          await rm(root, { recursive: true, force: true })
        }
      })
      const attempt = await ledger.attempt(() => run())
      assert.ok(removed)
      const result = vmResult(attempt)
      assert.equal(result.status, 'failure')
      assert.deepEqual(attempt.committed, [])
      RestorePointLedger.assertReferenceUnchanged(attempt)
      // everything on that remote is gone with it; the chain starts again
      ledger.forgetAll()
      await guestWrites(4)
      const next = await ledger.succeed(() => run())
      const vmRun = vmResult(next)
      assert.deepEqual(vmRun.disks.map(disk => disk.mode), ['full', 'full'])
      assert.ok(vmRun.warnings.length > 0, 'a full instead of a delta is logged as a warning')
      await ledger.assertRestorable()
      await assertRecovers()
    })
  })
})
