/**
 * The VHD a delta would be based on is checked against the block checksums recorded when it was
 * written (structures, the list's digest, a few sampled blocks): damaged data is never built
 * upon. A full rewritten by a merge keeps checksums: its blocks are the merged VHDs' blocks.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { checkBlocks, checksumsOf, readRecordedIntegrity } from '../../src/repository/integrity/index.js'
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
    assert.match(next.warnings[0]!, /is damaged: block \d+: its sha256 differs from the one recorded when the VHD was written/)
    await assertNewestRestores(vm, disk)

    // the new full is intact: the run after it is a delta again
    await harness.pool.sim.writeGuest(disk, 6 * BLOCK, randomBytes(4096))
    const after = await run(vm)
    assert.deepEqual(after.disks.map(d => d.mode), ['delta'], after.warnings.join('; '))
    assert.deepEqual(after.warnings, [])
    await assertNewestRestores(vm, disk)
  })

  it('a full rewritten by a merge keeps block checksums: the next run is a delta on it, without a warning', async function () {
    const { vm, disk } = createVm('merged full')
    await harness.pool.sim.writeGuest(disk, 0, randomBytes(BLOCK))
    await run(vm, 1)
    await harness.pool.sim.writeGuest(disk, 2 * BLOCK, randomBytes(BLOCK))
    const merged = await run(vm, 1)
    assert.deepEqual(merged.disks.map(d => d.mode), ['delta'])

    // retention 1: the only restore point left names the merged full; its block checksums are trusted and every block verifies
    const points = await restorePointsOf(harness.handler, vm, 'job-1')
    assert.equal(points.length, 1)
    const metadata = await readMetadata(harness.handler, points[0]!.id)
    assert.equal(Object.keys(metadata.continuousDelta?.blockChecksums ?? {}).length, 1)
    const full = points[0]!.disks[0]!.vhd
    const integrity = await checksumsOf(harness.handler, full, await readRecordedIntegrity(harness.handler, vm))
    assert.ok(integrity.status === 'listed', JSON.stringify(integrity))
    assert.deepEqual((await checkBlocks(harness.handler, full, integrity.list, { kind: 'all' })).damaged, [])

    await harness.pool.sim.writeGuest(disk, 4 * BLOCK, randomBytes(4096))
    const next = await run(vm, 1)
    assert.deepEqual(next.disks.map(d => d.mode), ['delta'], next.warnings.join('; '))
    assert.deepEqual(next.warnings, [])
    await assertNewestRestores(vm, disk)
  })
})
