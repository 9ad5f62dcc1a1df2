/**
 * A VHD damaged on the remote (a flipped byte, a truncated file, a missing parent): verifyRemote
 * names the restore points it breaks and only those, every other restore point still restores
 * byte-exact, and the next run does not build on the damage: it starts a new full, with a
 * warning, that restores byte-exact too.
 */
import assert from 'node:assert/strict'
import { open, readdir, readFile, stat, truncate, unlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { JobRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import type { RestorePoint } from '../../src/repository/restore-points.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import { RestorePointLedger } from './ledger.js'
import { SeededRandom } from './random.js'

const DISK_SIZE = 8 * MiB

async function flipByte(file: string, position: number): Promise<void> {
  const handle = await open(file, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, position)
    byte[0] = byte[0]! ^ 0xff
    await handle.write(byte, 0, 1, position)
  } finally {
    await handle.close()
  }
}

/** the local file of a VHD file, or of the largest block of a VHD directory (behind its alias) */
async function localDataFile(harness: Harness, vhd: string): Promise<string> {
  const local = join(harness.remote.path!, vhd)
  if (!vhd.endsWith('.alias.vhd')) return local
  const target = posix.join(posix.dirname(vhd), (await readFile(local, 'utf8')).trim())
  const blocksDir = join(harness.remote.path!, target, 'blocks')
  const files: string[] = []
  for (const entry of await readdir(blocksDir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) files.push(join(entry.parentPath, entry.name))
  }
  assert.ok(files.length > 0, `no block in ${target}`)
  return files.sort()[0]!
}

type Damage = 'flip a data byte' | 'flip a footer byte' | 'truncate' | 'remove the parent'

describe('reliability: a VHD damaged on the remote', function () {
  let harness: Harness
  const random = new SeededRandom(0xbad_da7a)

  before(async function () {
    harness = await startHarness()
  })

  after(async function () {
    await harness?.close()
  })

  /** a VM with a full and two deltas on the remote */
  async function chainOfThree(name: string) {
    const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'disk', size: DISK_SIZE }] })
    const disk = vdis[0]!
    const ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks: [disk], jobId: 'job-1', handler: () => harness.handler })
    const run = (): Promise<JobRunResult> => runJob(harness.job([vm]), harness.env())
    for (let i = 0; i < 3; i++) {
      for (let w = 0; w < 3; w++) {
        await harness.pool.sim.writeGuest(disk, random.int(0, DISK_SIZE / 4096 - 64) * 4096, random.bytes(64 * 4096))
      }
      await ledger.succeed(run)
    }
    const points = await restorePointsOf(harness.handler, vm, 'job-1')
    assert.equal(points.length, 3)
    return { vm, disk, ledger, run, points }
  }

  async function damage(kind: Damage, points: readonly RestorePoint[]): Promise<void> {
    const newest = points[2]!.disks[0]!.vhd
    const file = await localDataFile(harness, newest)
    const { size } = await stat(file)
    switch (kind) {
      case 'flip a data byte':
        // the middle of the newest VHD (file) or of one of its blocks (directory): block data
        return flipByte(file, Math.floor(size / 2))
      case 'flip a footer byte':
        assert.ok(!newest.endsWith('.alias.vhd'))
        return flipByte(file, size - 512 + 70)
      case 'truncate':
        return truncate(file, size - 4096)
      case 'remove the parent':
        assert.ok(!newest.endsWith('.alias.vhd'))
        return unlink(join(harness.remote.path!, points[1]!.disks[0]!.vhd))
    }
  }

  function checkDamage(kind: Damage): void {
    it(`${kind}: verify names the broken restore points, the others restore, the next run is a full`, async function () {
      const { vm, ledger, run, points } = await chainOfThree(`damaged: ${kind}`)
      await damage(kind, points)
      const broken = new Set(kind === 'remove the parent' ? [points[1]!.id, points[2]!.id] : [points[2]!.id])

      const report = await verifyRemote(harness.handler, { vm })
      assert.equal(report.ok, false)
      for (const point of points) {
        const found = report.restorePoints.find(candidate => candidate.id === point.id)
        assert.ok(found !== undefined, `verify does not report ${point.id}`)
        assert.equal(found.ok, !broken.has(point.id), `${point.id}: ${JSON.stringify(found.problems)}`)
        if (broken.has(point.id)) assert.ok(found.problems.some(problem => problem.severity === 'error'))
      }

      // the restore points the damage does not touch still restore byte-exact
      await ledger.assertRestorable({ skip: [...broken] })

      const attempt = await ledger.attempt(run)
      const vmResult = attempt.result!.vms[0]!
      assert.equal(vmResult.status, 'success', vmResult.error)
      assert.deepEqual(attempt.committed, [vmResult.restorePoint])
      assert.deepEqual(vmResult.disks.map(disk => disk.mode), ['full'], 'a new full, not a delta on the damaged VHD')
      assert.ok(vmResult.warnings.length > 0, 'the full is explained by a warning')
      await ledger.assertRestorable({ skip: [...broken] })
    })
  }

  checkDamage('flip a footer byte')
  checkDamage('truncate')
  checkDamage('remove the parent')
  // the next run checks the newest VHD against the checksum recorded at its transfer
  checkDamage('flip a data byte')
})
