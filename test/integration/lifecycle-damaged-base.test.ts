/**
 * The VHD a delta would be based on is checked against the checksum recorded when it was
 * transferred: damaged data is never built upon. A full rewritten by a merge has no recorded
 * checksum and is checked structurally only.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { BLOCK, hashRestoredDisk, MiB, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

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

describe('lifecycle: the base of a delta is checked against its recorded checksum', function () {
  let harness: Harness

  before(async function () {
    harness = await startHarness({ inventory: 'empty' })
  })

  after(async function () {
    await harness?.close()
  })

  function createVm(name: string): { vm: string; disk: string } {
    const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'root', size: 16 * MiB }] })
    return { vm, disk: vdis[0]! }
  }

  async function run(vm: string, retention = 100): Promise<VmRunResult> {
    const result = single((await runJob(harness.job([vm], { retention }), harness.env())).vms)
    assert.equal(result.status, 'success', result.error)
    return result
  }

  async function assertNewestRestores(vm: string, disk: string): Promise<void> {
    const point = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!
    assert.equal(await hashRestoredDisk(harness.handler, point, disk), await harness.pool.sim.hashVdi(disk))
  }

  it('a data byte of the newest delta flipped: the next run is a full, its warning says the checksum differs', async function () {
    const { vm, disk } = createVm('damaged delta')
    await harness.pool.sim.writeGuest(disk, 0, randomBytes(BLOCK))
    assert.deepEqual((await run(vm)).disks.map(d => d.mode), ['full'])
    await harness.pool.sim.writeGuest(disk, 3 * BLOCK, randomBytes(BLOCK))
    assert.deepEqual((await run(vm)).disks.map(d => d.mode), ['delta'])

    const newest = (await restorePointsOf(harness.handler, vm, 'job-1')).at(-1)!.disks[0]!.vhd
    // after the footer, header and block table: block data
    await flipByte(join(harness.remote.path!, newest), 512 + 1024 + 512 + BLOCK / 2)

    await harness.pool.sim.writeGuest(disk, 5 * BLOCK, randomBytes(4096))
    const next = await run(vm)
    assert.deepEqual(next.disks.map(d => d.mode), ['full'])
    assert.equal(next.warnings.length, 1, next.warnings.join('; '))
    assert.ok(next.warnings[0]!.includes(newest), next.warnings[0])
    assert.match(next.warnings[0]!, /is damaged: its sha256 [0-9a-f]{64} \(\d+ bytes\) differs from [0-9a-f]{64} \(\d+ bytes\) recorded when it was transferred/)
    await assertNewestRestores(vm, disk)

    // the new full is intact: the run after it is a delta again
    await harness.pool.sim.writeGuest(disk, 6 * BLOCK, randomBytes(4096))
    const after = await run(vm)
    assert.deepEqual(after.disks.map(d => d.mode), ['delta'], after.warnings.join('; '))
    assert.deepEqual(after.warnings, [])
    await assertNewestRestores(vm, disk)
  })

  it('a full rewritten by a merge has no recorded checksum: the next run is a delta on it, without a warning', async function () {
    const { vm, disk } = createVm('merged full')
    await harness.pool.sim.writeGuest(disk, 0, randomBytes(BLOCK))
    await run(vm, 1)
    await harness.pool.sim.writeGuest(disk, 2 * BLOCK, randomBytes(BLOCK))
    const merged = await run(vm, 1)
    assert.deepEqual(merged.disks.map(d => d.mode), ['delta'])

    // retention 1: the only restore point left names the merged full, with no checksum for it
    const points = await restorePointsOf(harness.handler, vm, 'job-1')
    assert.equal(points.length, 1)
    const metadata = await readMetadata(harness.handler, points[0]!.id)
    assert.deepEqual(metadata.continuousDelta?.checksums, {})

    await harness.pool.sim.writeGuest(disk, 4 * BLOCK, randomBytes(4096))
    const next = await run(vm, 1)
    assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
    assert.deepEqual(next.warnings, [])
    await assertNewestRestores(vm, disk)
  })
})
