/**
 * A whole-VM restore right after a crash in the middle of retention's merge, with no backup run
 * in between: `restoreVm` finishes the pending merge, then restores every restore point still
 * listed with its disk byte-exact.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { cp, mkdtemp, rm, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runJob } from '../../src/lifecycle/run-job.js'
import { listMergeStates } from '../../src/repository/merge/state.js'
import { restoreVm } from '../../src/restore/restore-vm.js'
import { BLOCK, MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { runMergeChild, type ChildOutcome } from './merge-crash-runner.js'


function runChild(remote: string, chain: string[], killBefore?: number): Promise<ChildOutcome> {
  return runMergeChild(remote, chain, { killBefore })
}

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`restoreVm right after a merge crash [${remote}]`, function () {
    this.timeout(300_000)
    let harness: Harness

    afterEach(async () => {
      await harness?.close()
    })

    for (const when of ['while moving blocks', 'in its rename step'] as const) {
      it(`restores every listed restore point when the merge died ${when}`, async () => {
        harness = await startHarness({ inventory: 'empty', remote })
        const { sim } = harness.pool
        const { vm, vdis } = sim.createVm({ name: 'db', disks: [{ name: 'root', size: 16 * MiB, bootable: true }], macs: ['02:00:00:bb:00:01'] })
        const vdi = vdis[0]!
        const hashes = new Map<string, string>()
        for (let run = 0; run < 3; run++) {
          await sim.writeGuest(vdi, run * BLOCK + 4096, randomBytes(256 * 1024))
          const result = (await runJob(harness.job([vm]), harness.env())).vms[0]!
          assert.equal(result.status, 'success', result.error)
          hashes.set(result.restorePoint!, await sim.hashVdi(vdi))
        }
        const points = await restorePointsOf(harness.handler, vm, 'job-1')
        assert.equal(points.length, 3)
        const root = harness.remote.path!
        const chain = points.slice(0, 2).map(point => point.disks[0]!.vhd)

        // retention removes the oldest restore point's metadata, then merges its VHD into the next one
        await unlink(join(root, points[0]!.id))
        const scratch = await mkdtemp(join(tmpdir(), 'merge-count-'))
        let changes: number
        try {
          await cp(root, scratch, { recursive: true })
          const outcome = await runChild(scratch, chain)
          assert.equal(outcome.signal, null, outcome.stderr)
          changes = (JSON.parse(outcome.stdout) as { changes: number }).changes
        } finally {
          await rm(scratch, { recursive: true, force: true })
        }
        const killBefore = when === 'in its rename step' ? changes - 3 : 4
        const killed = await runChild(root, chain, killBefore)
        assert.equal(killed.signal, 'SIGKILL', killed.stderr)
        const diskDir = chain[0]!.slice(0, chain[0]!.lastIndexOf('/'))
        assert.equal((await listMergeStates(harness.handler, diskDir)).length, 1, 'the crash leaves a pending merge')

        const listed = await restorePointsOf(harness.handler, vm, 'job-1')
        assert.deepEqual(listed.map(point => point.id), points.slice(1).map(point => point.id))
        for (const point of listed) {
          const restored = await restoreVm({ handler: harness.handler, restorePoint: point.id, xapi: harness.xapi, sr: sim.defaultSr() })
          const vbd = sim.record('VBD', (sim.record('VM', restored.vm).VBDs as string[])[0]!)
          assert.equal(await sim.hashVdi(sim.record('VDI', String(vbd.VDI)).uuid), hashes.get(point.id), point.id)
        }
        assert.deepEqual(await listMergeStates(harness.handler, diskDir), [])
      })
    }
  })
}
