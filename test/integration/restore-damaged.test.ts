/**
 * Issue 10, finding 1: four bytes flipped in the middle of a delta still within retention.
 * `verify` names the damaged block; a restore of any restore point whose chain reads that block
 * fails with DATA_DAMAGED naming the VHD, the block and the restore point — never "success" with
 * wrong bytes — and leaves nothing on the pool; restore points that do not read it restore
 * byte-exact; `allowDamaged` restores anyway and lists exactly the damaged block. On VHD files and
 * VHD directories.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { runJob } from '../../src/lifecycle/run-job.js'
import { sidecarPath } from '../../src/repository/integrity/index.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { restoreVm } from '../../src/restore/restore-vm.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { BLOCK, MiB, RecordingReporter, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { flipFourBytesInFirstBlock } from '../repository/damage.js'
import { hashStream } from '../repository/exports.js'

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`restore of damaged data fails, naming it [${remote}]`, function () {
    let harness: Harness
    let vm: string
    let disk: string
    /** restore point ids, oldest first, and the disk's sha256 at each */
    const points: { id: string; vhd: string; hash: string }[] = []

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
      const { sim } = harness.pool
      const created = sim.createVm({ name: 'damaged', disks: [{ name: 'root', size: 16 * MiB }] })
      vm = created.vm
      disk = created.vdis[0]!
      // full; delta of blocks 2 and 3 (the one damaged below); delta of block 6 only
      for (const [offset, length] of [[0, 2 * BLOCK], [2 * BLOCK, 2 * BLOCK], [6 * BLOCK, 4096]] as const) {
        await sim.writeGuest(disk, offset, randomBytes(length))
        const result = (await runJob(harness.job([vm]), harness.env())).vms[0]!
        assert.equal(result.status, 'success', result.error)
        const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
        points.push({ id: point.id, vhd: point.disks[0]!.vhd, hash: await sim.hashVdi(disk) })
      }
      await flipFourBytesInFirstBlock(harness.remote.path!, harness.handler, points[1]!.vhd)
    })

    after(async function () {
      await harness?.close()
    })

    function vmCount(): number {
      return harness.pool.sim.all('VM').length
    }

    it('verify names the damaged block of the middle delta, for the restore points that need it', async function () {
      const report = await verifyRemote(harness.handler, { vm })
      assert.equal(report.ok, false)
      const byId = new Map(report.restorePoints.map(p => [p.id, p.problems.map(q => `${q.code} ${q.path} ${q.message}`)]))
      assert.deepEqual(byId.get(points[0]!.id), [])
      for (const point of points.slice(1)) {
        assert.equal(byId.get(point.id)!.length, 1, byId.get(point.id)!.join('\n'))
        assert.match(byId.get(point.id)![0]!, new RegExp(`^block-checksum-mismatch ${points[1]!.vhd} block 2: `))
      }
      assert.ok(report.read.blocks > 0 && report.read.bytes >= report.read.blocks * BLOCK)
    })

    it('a restore of a point reading the damaged block fails with DATA_DAMAGED naming VHD, block and restore point; nothing is left', async function () {
      const { sim } = harness.pool
      for (const point of points.slice(1)) {
        const before = vmCount()
        await assert.rejects(
          restoreVm({ handler: harness.handler, restorePoint: point.id, xapi: harness.xapi, sr: sim.defaultSr(), reporter: new RecordingReporter() }),
          (error: Error & { code?: string }) => {
            assert.equal(error.code, 'DATA_DAMAGED', error.message)
            assert.ok(error.message.includes(`restore point ${point.id}`), error.message)
            assert.ok(error.message.includes(`block 2 of VHD ${points[1]!.vhd}`), error.message)
            return true
          },
        )
        assert.equal(vmCount(), before, 'the failed restore removed what it created')
      }
    })

    it('the restore point before the damage restores byte-exact', async function () {
      const { sim } = harness.pool
      const restored = await restoreVm({ handler: harness.handler, restorePoint: points[0]!.id, xapi: harness.xapi, sr: sim.defaultSr() })
      assert.deepEqual(restored.damaged, [])
      const vdi = sim.record('VDI', String(sim.record('VBD', (sim.record('VM', restored.vm).VBDs as string[])[0]!).VDI))
      assert.equal(await sim.hashVdi(String(vdi.uuid)), points[0]!.hash)
    })

    it('allowDamaged restores anyway and lists exactly the damaged block', async function () {
      const { sim } = harness.pool
      const reporter = new RecordingReporter()
      const restored = await restoreVm({ handler: harness.handler, restorePoint: points[2]!.id, xapi: harness.xapi, sr: sim.defaultSr(), reporter, allowDamaged: true })
      assert.deepEqual(restored.damaged.map(d => [d.vhd, d.block]), [[points[1]!.vhd, 2]])
      const vdi = sim.record('VDI', String(sim.record('VBD', (sim.record('VM', restored.vm).VBDs as string[])[0]!).VDI))
      // the data as it is on the remote: not the bytes of the restore point
      assert.notEqual(await sim.hashVdi(String(vdi.uuid)), points[2]!.hash)
      assert.match(reporter.warnings().join('\n'), /damaged/)
    })

    it('with the damaged delta\'s sidecar gone too: the recomputed list differs from the digest, the read fails before the first byte', async function () {
      const sidecar = sidecarPath(points[1]!.vhd)
      const saved = await harness.handler.readFile(sidecar)
      await harness.handler.unlink(sidecar)
      try {
        await assert.rejects(openChainRawStream(harness.handler, points[2]!.vhd, { restorePoint: points[2]!.id }), { code: 'DATA_DAMAGED' })
        // the undamaged full, its sidecar gone, costs a recomputation and reads byte-exact
        await harness.handler.unlink(sidecarPath(points[0]!.vhd))
        const { stream } = await openChainRawStream(harness.handler, points[0]!.vhd)
        assert.equal((await hashStream(stream)).sha256, points[0]!.hash)
      } finally {
        await harness.handler.writeFile(sidecar, saved, { flags: 'w' })
      }
    })
  })
}
