/** Snapshots copy nothing (as on a real SR), yet their contents never change after they are taken. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { createRaw, downloadExport, readVhd, sha256File } from './test-support.js'

const KiB = 1024
const MiB = 1024 ** 2
const SIZE = 32 * MiB

/** bytes a file holds on the file system (its allocated blocks) */
const allocatedBytes = (path: string): number => statSync(path).blocks * 512

describe('simulated pool: snapshots are copy-on-write', () => {
  let pool: SimulatedPool
  let xapi: Xapi
  let tmp: string
  let exports = 0

  beforeEach(async () => {
    pool = await startSimulatedPool({ inventory: 'empty' })
    xapi = await connectXapi(pool)
    tmp = await mkdtemp(join(tmpdir(), 'sim-cow-'))
  })
  afterEach(async () => {
    await xapi.disconnect()
    await pool.close()
    await rm(tmp, { recursive: true, force: true })
  })

  async function snapshotDisk(vm: string): Promise<{ ref: string; uuid: string; vm: string }> {
    const snapshot = await xapi.callAsync<string>('VM.snapshot', pool.sim.record('VM', vm).$ref, 'backup')
    const [vdi] = pool.sim.vdisOf(pool.sim.record('VM', snapshot).uuid)
    return { ref: vdi!.$ref, uuid: vdi!.uuid, vm: snapshot }
  }

  /** the export's blocks, and the sha256 of the raw disk it makes applied over `under` (or nothing) */
  async function exported(query: Record<string, string>, under?: string): Promise<{ blocks: number[]; hash: string; raw: string }> {
    const vhd = join(tmp, `export-${++exports}.vhd`)
    const raw = join(tmp, `export-${exports}.raw`)
    await downloadExport(xapi, query, vhd)
    if (under === undefined) await createRaw(raw, 0)
    else await copyFile(under, raw)
    const { blocks } = await readVhd(vhd, raw)
    return { blocks, hash: await sha256File(raw), raw }
  }

  it('a snapshot copies no data, and writes after it change neither its content nor its export', async () => {
    const { vm, vdis } = pool.sim.createVm({ name: 'guest', disks: [{ name: 'disk', size: SIZE }] })
    const disk = vdis[0]!
    for (const [offset, length] of [[0, 64 * KiB], [5 * MiB + 4096, 300 * KiB], [13 * MiB, 3 * MiB]] as const) {
      await pool.sim.writeGuest(disk, offset, randomBytes(length))
    }
    const before = await pool.sim.hashVdi(disk)
    const snap = await snapshotDisk(vm)
    assert.equal(allocatedBytes(pool.sim.vdiPath(snap.uuid)), 0, 'the snapshot holds no data of its own')
    assert.equal(await pool.sim.hashVdi(snap.uuid), before)
    const full = await exported({ format: 'vhd', vdi: snap.ref })
    assert.equal(full.hash, before)
    assert.deepEqual(full.blocks, [0, 2, 6, 7])

    // after the snapshot: within data (part of a chunk), across a chunk boundary, into a hole, a whole block
    await pool.sim.writeGuest(disk, 5 * MiB + 8192, randomBytes(512))
    await pool.sim.writeGuest(disk, 64 * KiB - 100, randomBytes(200))
    await pool.sim.writeGuest(disk, 20 * MiB + 100, randomBytes(4096))
    await pool.sim.writeGuest(disk, 14 * MiB, randomBytes(2 * MiB))

    assert.equal(await pool.sim.hashVdi(snap.uuid), before)
    const again = await exported({ format: 'vhd', vdi: snap.ref })
    assert.deepEqual({ blocks: again.blocks, hash: again.hash }, { blocks: full.blocks, hash: full.hash })
    // what the snapshot keeps is the 64 KiB chunks overwritten that held data: 1 + 2 + 32, not the hole
    const kept = allocatedBytes(pool.sim.vdiPath(snap.uuid))
    assert.ok(kept > 0 && kept <= 35 * 64 * KiB, `${kept} bytes kept`)

    // the disk shows the new bytes, in a full export and in a delta against the snapshot
    const now = await pool.sim.hashVdi(disk)
    assert.notEqual(now, before)
    assert.equal((await exported({ format: 'vhd', vdi: pool.sim.record('VDI', disk).$ref })).hash, now)
    const delta = await exported({ format: 'vhd', vdi: pool.sim.record('VDI', disk).$ref, base: snap.ref }, full.raw)
    assert.deepEqual(delta.blocks, [0, 2, 7, 10])
    assert.equal(delta.hash, now)
  })

  it('a chain of snapshots keeps each one byte for byte when a middle one or the disk itself is destroyed', async () => {
    const { vm, vdis } = pool.sim.createVm({ name: 'guest', disks: [{ name: 'disk', size: SIZE }] })
    const disk = vdis[0]!
    const snaps: { ref: string; uuid: string; hash: string }[] = []
    for (let round = 0; round < 3; round++) {
      await pool.sim.writeGuest(disk, round * 3 * MiB + 4096, randomBytes(3 * MiB))
      await pool.sim.writeGuest(disk, 0, randomBytes(100 * KiB))
      const hash = await pool.sim.hashVdi(disk)
      snaps.push({ ...(await snapshotDisk(vm)), hash })
    }
    await pool.sim.writeGuest(disk, 30 * MiB, randomBytes(MiB))
    for (const snap of snaps) assert.equal(await pool.sim.hashVdi(snap.uuid), snap.hash)

    // a delta between two snapshots applied over the older makes the newer
    const [first, middle, last] = snaps as [(typeof snaps)[0], (typeof snaps)[0], (typeof snaps)[0]]
    const older = await exported({ format: 'vhd', vdi: first.ref })
    assert.equal(older.hash, first.hash)
    assert.equal((await exported({ format: 'vhd', vdi: middle.ref, base: first.ref }, older.raw)).hash, middle.hash)

    // the middle snapshot goes: the older one gets the chunks it read through it
    pool.sim.faults.destroyVdiBehindClient(middle.uuid)
    assert.equal(await pool.sim.hashVdi(first.uuid), first.hash)
    assert.equal(await pool.sim.hashVdi(last.uuid), last.hash)
    await pool.sim.writeGuest(disk, 2 * MiB, randomBytes(8 * MiB))
    assert.equal(await pool.sim.hashVdi(first.uuid), first.hash)
    assert.equal(await pool.sim.hashVdi(last.uuid), last.hash)

    // the disk goes: the snapshots keep their contents
    pool.sim.faults.destroyVdiBehindClient(disk)
    assert.equal(await pool.sim.hashVdi(first.uuid), first.hash)
    assert.equal(await pool.sim.hashVdi(last.uuid), last.hash)
    assert.equal((await exported({ format: 'vhd', vdi: last.ref })).hash, last.hash)
    assert.equal((await exported({ format: 'vhd', vdi: last.ref, base: first.ref }, older.raw)).hash, last.hash)
  })
})
