/** Changed block tracking as the simulated pool plays it (profiles with CBT: XenServer 7.3 / XCP-ng 7.4 on). */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'

const KiB = 1024
const MiB = 1024 * KiB

function changedBlocks(base64: string): number[] {
  const bitmap = Buffer.from(base64, 'base64')
  const blocks: number[] = []
  for (let i = 0; i < bitmap.length * 8; i++) if ((bitmap[i >> 3]! & (0x80 >> (i & 7))) !== 0) blocks.push(i)
  return blocks
}

describe('simulated pool: changed block tracking', () => {
  let pool: SimulatedPool
  let xapi: Xapi

  before(async () => {
    pool = await startSimulatedPool({ profile: 'xcp-ng-8.3-nbd' })
    xapi = await connectXapi(pool)
  })
  after(async () => {
    await xapi.disconnect()
    await pool.close()
  })

  const snapshotDisk = async (vdi: string): Promise<string> => xapi.callAsync<string>('VDI.snapshot', vdi)

  it('lists the 64 KiB blocks changed between two snapshots, still after data_destroy of the earlier one', async () => {
    const { vdis } = pool.sim.createVm({ name: 'cbt', disks: [{ name: 'd', size: 8 * MiB }], running: false })
    const uuid = vdis[0]!
    const ref = pool.sim.record('VDI', uuid).$ref
    await pool.sim.writeGuest(uuid, 0, randomBytes(200 * KiB))
    await xapi.call('VDI.enable_cbt', ref)
    assert.equal(pool.sim.record('VDI', uuid).cbt_enabled, true)
    const first = await snapshotDisk(ref)
    await pool.sim.writeGuest(uuid, 64 * KiB + 10, Buffer.from('changed'))
    await pool.sim.writeGuest(uuid, 5 * MiB, randomBytes(100 * KiB))
    const second = await snapshotDisk(ref)
    const expected = [1, 80, 81]
    assert.deepEqual(changedBlocks(await xapi.call<string>('VDI.list_changed_blocks', first, second)), expected)
    assert.equal(Buffer.from(await xapi.call<string>('VDI.list_changed_blocks', first, second), 'base64').length, 16)

    const before = await pool.sim.bytesOnSr(pool.sim.record('VDI', first).uuid)
    await xapi.call('VDI.data_destroy', first)
    const destroyed = pool.sim.record('VDI', first)
    assert.equal(destroyed.type, 'cbt_metadata')
    assert.ok((await pool.sim.bytesOnSr(destroyed.uuid)) < before / 10, 'only the CBT log is left on the SR')
    assert.deepEqual(changedBlocks(await xapi.call<string>('VDI.list_changed_blocks', first, second)), expected)

    // a CBT-metadata VDI has no data: it is neither exported nor the base of an export
    await assert.rejects(xapi.getResource('/export_raw_vdi/', { query: { format: 'vhd', vdi: second, base: first }, task: true }).then(async response => {
      const body = (response as { body?: AsyncIterable<Buffer> }).body
      if (body !== undefined) for await (const _ of body) void _
    }))
    // data_destroy of a disk that is not a snapshot is refused
    await assert.rejects(xapi.call('VDI.data_destroy', ref), { code: 'VDI_NOT_A_SNAPSHOT' })
  })

  it('disabling CBT, or moving the disk to another SR, breaks the log: earlier snapshots can no longer be compared', async () => {
    const { vdis } = pool.sim.createVm({ name: 'broken', disks: [{ name: 'd', size: 4 * MiB }], running: false })
    const uuid = vdis[0]!
    const ref = pool.sim.record('VDI', uuid).$ref
    await xapi.call('VDI.enable_cbt', ref)
    const first = await snapshotDisk(ref)
    await xapi.call('VDI.disable_cbt', ref)
    await xapi.call('VDI.enable_cbt', ref)
    const second = await snapshotDisk(ref)
    await assert.rejects(xapi.call('VDI.list_changed_blocks', first, second), { code: 'SR_BACKEND_FAILURE_460' })

    pool.sim.migrateVdi(uuid, pool.sim.secondSr())
    const third = await snapshotDisk(ref)
    await assert.rejects(xapi.call('VDI.list_changed_blocks', second, third), { code: 'SR_BACKEND_FAILURE_460' })
    assert.equal(pool.sim.record('VDI', uuid).SR, pool.sim.record('SR', pool.sim.secondSr()).$ref)

    const untracked = pool.sim.createVm({ name: 'untracked', disks: [{ name: 'd', size: 4 * MiB }], running: false }).vdis[0]!
    const plain = await snapshotDisk(pool.sim.record('VDI', untracked).$ref)
    await assert.rejects(xapi.call('VDI.list_changed_blocks', plain, plain), { code: 'VDI_NO_CBT_METADATA' })
    await assert.rejects(xapi.call('VDI.data_destroy', plain), { code: 'VDI_NO_CBT_METADATA' })
  })
})
