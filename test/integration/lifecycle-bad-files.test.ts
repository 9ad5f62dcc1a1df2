/**
 * One bad file never stops backups: a truncated metadata file, another tool's backup (Xen
 * Orchestra's full backup, an XVA) in the VM folder, a restore point whose VHD is truncated. Runs
 * go on, with merges past retention; the bad files are left exactly as they were; the damaged
 * restore points are listed as damaged, with their reason; retention counts only restorable
 * restore points, and the run's warning names the others.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { truncate } from 'node:fs/promises'
import { join } from 'node:path'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { forgetVmBackups } from '../../src/repository/delete.js'
import { vmDir } from '../../src/repository/layout.js'
import { listRestorePointsWithStatus } from '../../src/repository/restore-points.js'
import { BACKUP_KEYS } from '../../src/xapi/other-config.js'
import { BLOCK, hashRestoredDisk, MiB, remoteProblems, restorePointsOf, sha256Of, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

const JOB = 'job-1'

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`lifecycle: one bad file never stops backups [${remote}]`, function () {
    let harness: Harness

    beforeEach(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
    })

    afterEach(async function () {
      await harness?.close()
    })

    /** a VM with one disk; `run(n)` writes a change, backs up, remembers the guest disk's sha256 */
    function guest(name: string, retention: number) {
      const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'root', size: 8 * MiB }] })
      const disk = vdis[0]!
      const hashes = new Map<string, string>()
      return {
        vm,
        disk,
        hashes,
        async run(n: number, settings: { useVhdDirectory?: boolean } = {}): Promise<VmRunResult> {
          await harness.pool.sim.writeGuest(disk, (n % 4) * BLOCK + 4096, randomBytes(64 * 1024))
          const result = (await runJob(harness.job([vm], { retention }), { ...harness.env(), settings })).vms[0]!
          assert.equal(result.status, 'success', `run ${n}: ${result.error}`)
          hashes.set(result.restorePoint!, await harness.pool.sim.hashVdi(disk))
          return result
        },
        /** every restorable restore point of the job restores the guest disk of its run */
        async assertRestorable(): Promise<string[]> {
          const listed = await listRestorePointsWithStatus(harness.handler, { vm, jobId: JOB })
          const restorable = listed.filter(point => point.status === 'restorable')
          for (const point of restorable) {
            assert.equal(await hashRestoredDisk(harness.handler, point, disk), hashes.get(point.id), point.id)
          }
          return restorable.map(point => point.id)
        },
      }
    }

    async function hashFile(path: string): Promise<string> {
      return sha256Of(await harness.handler.createReadStream(path))
    }

    it('a truncated metadata file: later runs go on with merges past retention, the file is left as it is and listed as damaged', async function () {
      const g = guest('truncated-json', 3)
      for (let n = 0; n < 3; n++) await g.run(n)
      const points = await restorePointsOf(harness.handler, g.vm, JOB)
      const bad = points[1]!.id
      const text = await harness.handler.readFile(bad)
      await harness.handler.writeFile(bad, text.subarray(0, Math.floor(text.length / 2)), { flags: 'w' })
      const badHash = await hashFile(bad)

      const warnings: string[] = []
      for (let n = 3; n < 6; n++) warnings.push(...(await g.run(n)).warnings)
      // every run named it, as not counted toward retention
      assert.ok(warnings.length > 0 && warnings.every(w => w.includes(bad) && /not valid JSON/.test(w)), warnings.join('\n'))

      assert.equal(await hashFile(bad), badHash, 'the damaged file is left as it is')
      const listed = await listRestorePointsWithStatus(harness.handler, { vm: g.vm })
      const damaged = listed.filter(point => point.status === 'damaged')
      assert.deepEqual(damaged.map(point => point.id), [bad])
      assert.equal(damaged[0]!.jobId, JOB, 'its job is read from what is left of it')
      assert.match(damaged[0]!.reason!, /not valid JSON/)
      // retention 3 counts the restorable ones only, and they restore
      assert.equal((await g.assertRestorable()).length, 3)
      const problems = await remoteProblems(harness.handler, g.vm)
      assert.deepEqual(problems.filter(line => line.startsWith('error')), [`error metadata-invalid ${bad}`])
    })

    if (remote === 'file') it('the newest metadata file truncated: the next run is a delta on its VHD, nothing of it is deleted early', async function () {
      const g = guest('truncated-newest', 2)
      for (let n = 0; n < 2; n++) await g.run(n)
      const newest = (await restorePointsOf(harness.handler, g.vm, JOB)).at(-1)!
      await harness.handler.writeFile(newest.id, '{"version":"2.0.0","mode":"delta","jobId":"job-1","sched', { flags: 'w' })
      const next = await g.run(2)
      assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
      // its VHD is still the parent of the new delta
      const listed = await listRestorePointsWithStatus(harness.handler, { vm: g.vm, jobId: JOB })
      assert.deepEqual(listed.map(point => point.status), ['restorable', 'damaged', 'restorable'])
      assert.equal((await g.assertRestorable()).length, 2)
      for (let n = 3; n < 5; n++) await g.run(n)
      assert.equal((await g.assertRestorable()).length, 2)
      assert.deepEqual((await listRestorePointsWithStatus(harness.handler, { vm: g.vm })).filter(p => p.status === 'damaged').map(p => p.id), [newest.id])
    })

    if (remote === 'file') it("Xen Orchestra's full backup (XVA) in the VM folder: runs go on, nothing of it is touched, it is no restore point of ours, forgetting the VM keeps it", async function () {
      const g = guest('beside-xva', 2)
      await g.run(0)
      const folder = vmDir(g.vm)
      const ours = JSON.parse((await harness.handler.readFile((await restorePointsOf(harness.handler, g.vm, JOB))[0]!.id)).toString()) as Record<string, unknown>
      const ts = '20200101T000000Z'
      // an XVA is a tar: 512-byte records, two zero records at its end
      const xva = Buffer.concat([Buffer.from('vm-xva-header'.padEnd(512, ' ')), Buffer.alloc(1536)])
      const files = {
        [`${folder}/${ts}.xva`]: xva,
        [`${folder}/${ts}.xva.checksum`]: Buffer.from(createHash('sha256').update(xva).digest('hex')),
        [`${folder}/${ts}.json`]: Buffer.from(
          JSON.stringify({ version: '2.0.0', mode: 'full', jobId: 'c0ffee00-0000-4000-8000-00000000f011', scheduleId: 'c0ffee00-0000-4000-8000-00000000f012', timestamp: Date.UTC(2020, 0, 1), vm: ours['vm'], vmSnapshot: ours['vmSnapshot'], xva: `./${ts}.xva`, size: xva.length }),
        ),
      }
      for (const [path, content] of Object.entries(files)) await harness.handler.writeFile(path, content)
      const before = await Promise.all(Object.keys(files).map(hashFile))

      for (let n = 1; n < 4; n++) {
        const result = await g.run(n)
        assert.deepEqual(result.warnings, [], `run ${n}`)
      }
      assert.deepEqual(await Promise.all(Object.keys(files).map(hashFile)), before, "the XVA backup's files after our runs")
      const listed = await listRestorePointsWithStatus(harness.handler, { vm: g.vm })
      assert.ok(listed.every(point => point.status === 'restorable' && point.jobId === JOB), JSON.stringify(listed.map(p => [p.id, p.status])))
      assert.equal((await g.assertRestorable()).length, 2)
      assert.deepEqual((await remoteProblems(harness.handler, g.vm)).filter(line => line.startsWith('error')), [])

      const forgotten = await forgetVmBackups(harness.handler, g.vm)
      assert.deepEqual(forgotten.kept, [`${folder}/${ts}.json`])
      assert.deepEqual(await Promise.all(Object.keys(files).map(hashFile)), before, "the XVA backup's files after forgetting our backups")
    })

    if (remote === 'file') it('a restore point with a truncated VHD is not counted: retention keeps as many restorable ones, the run names it', async function () {
      const g = guest('truncated-vhd', 3)
      for (let n = 0; n < 3; n++) await g.run(n)
      const broken = (await restorePointsOf(harness.handler, g.vm, JOB)).at(-1)!
      const vhd = join(harness.remote.path!, broken.disks[0]!.vhd)
      await truncate(vhd, 512 + 1024 + 512 + BLOCK / 2)
      const brokenJson = await hashFile(broken.id)

      const next = await g.run(3)
      assert.deepEqual(next.disks.map(d => d.mode), ['full'])
      assert.ok(next.warnings.some(w => w.includes(broken.id) && w.includes('not counted toward retention')), next.warnings.join('\n'))
      // three restorable restore points, as retention 3 promises: none went early because of the broken one
      assert.equal((await g.assertRestorable()).length, 3)
      for (let n = 4; n < 6; n++) await g.run(n)
      assert.equal((await g.assertRestorable()).length, 3)
      // left as it is, listed as damaged, reported by verify
      assert.equal(await hashFile(broken.id), brokenJson)
      const damaged = (await listRestorePointsWithStatus(harness.handler, { vm: g.vm })).filter(point => point.status === 'damaged')
      assert.deepEqual(damaged.map(point => point.id), [broken.id])
      assert.ok((await remoteProblems(harness.handler, g.vm)).some(line => line.startsWith('error') && line.includes(broken.disks[0]!.vhd)))
    })

    if (remote === 'file') for (const [from, to] of [[false, true], [true, false]] as const) {
      it(`useVhdDirectory switched ${to ? 'on' : 'off'} on chains of ${from ? 'VHD directories' : 'VHD files'}: deltas keep their chain's format, the next full takes the new one, merges past retention, restores byte-exact, verify clean`, async function () {
        const g = guest(`flip-${to ? 'on' : 'off'}`, 2)
        const isAlias = (path: string) => path.endsWith('.alias.vhd')
        for (let n = 0; n < 3; n++) await g.run(n, { useVhdDirectory: from })
        const flipped = { useVhdDirectory: to }
        // deltas on the existing chain: its format, with a merge each run
        for (let n = 3; n < 5; n++) {
          const result = await g.run(n, flipped)
          assert.deepEqual(result.disks.map(d => d.mode), ['delta'], result.warnings.join('; '))
          assert.ok((result.merges ?? []).length > 0, `run ${n} merged`)
        }
        const points = await restorePointsOf(harness.handler, g.vm, JOB)
        assert.deepEqual(points.map(point => isAlias(point.disks[0]!.vhd)), points.map(() => from))
        assert.equal((await g.assertRestorable()).length, 2)

        // the next full of this disk (its reference snapshot gone) is written in the new format
        const [snapshot] = harness.pool.sim.all('VM').filter(vm => vm.is_a_snapshot === true && (vm.other_config as Record<string, string>)[BACKUP_KEYS.vm] === g.vm)
        await harness.xapi.callAsync('VM.destroy', snapshot!.$ref)
        const full = await g.run(5, flipped)
        assert.deepEqual(full.disks.map(d => d.mode), ['full'])
        for (let n = 6; n < 9; n++) {
          const result = await g.run(n, flipped)
          assert.deepEqual(result.disks.map(d => d.mode), ['delta'], result.warnings.join('; '))
        }
        const after = await restorePointsOf(harness.handler, g.vm, JOB)
        assert.deepEqual(after.map(point => isAlias(point.disks[0]!.vhd)), after.map(() => to))
        assert.equal((await g.assertRestorable()).length, 2)
        assert.deepEqual(await remoteProblems(harness.handler, g.vm), [])
      })
    }
  })
}
