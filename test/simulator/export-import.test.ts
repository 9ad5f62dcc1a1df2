import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createWriteStream } from 'node:fs'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { createRaw, downloadExport, readVhd, sha256File, uploadImport, vdiCreateArgs } from './test-support.js'

const MiB = 1024 ** 2
const GiB = 1024 ** 3
const BLOCK = 2 * MiB

const blocksOf = (writes: readonly (readonly [offset: number, length: number])[]): number[] =>
  [...new Set(writes.flatMap(([offset, length]) => {
    const blocks: number[] = []
    for (let b = Math.floor(offset / BLOCK); b <= Math.floor((offset + length - 1) / BLOCK); ++b) blocks.push(b)
    return blocks
  }))].sort((a, b) => a - b)

describe('simulated pool: disk export and import', () => {
  let pool: SimulatedPool
  let xapi: Xapi
  let tmp: string

  beforeEach(async () => {
    pool = await startSimulatedPool({ inventory: 'empty' })
    xapi = await connectXapi(pool)
    tmp = await mkdtemp(join(tmpdir(), 'sim-export-'))
  })
  afterEach(async () => {
    await xapi.disconnect()
    await pool.close()
    await rm(tmp, { recursive: true, force: true })
  })

  async function vmWithDisk(size: number, writes: readonly (readonly [number, number])[]): Promise<{ vm: string; vdi: string }> {
    const { vm, vdis } = pool.sim.createVm({ name: 'guest', disks: [{ name: 'disk', size }] })
    for (const [offset, length] of writes) await pool.sim.writeGuest(vdis[0]!, offset, randomBytes(length))
    await xapi.barrier()
    return { vm, vdi: vdis[0]! }
  }

  async function snapshotDisk(vm: string): Promise<{ ref: string; uuid: string }> {
    const snapshot = await xapi.callAsync<string>('VM.snapshot', pool.sim.record('VM', vm).$ref, 'backup')
    const [vdi] = pool.sim.vdisOf(pool.sim.record('VM', snapshot).uuid)
    return { ref: vdi!.$ref, uuid: vdi!.uuid }
  }

  it('exports a full dynamic VHD holding the written blocks, equal to the disk', async () => {
    const writes = [[0, 64 * 1024], [5 * MiB + 4096, 300 * 1024], [13 * MiB, 3 * MiB]] as const
    const { vm } = await vmWithDisk(24 * MiB, writes)
    const snap = await snapshotDisk(vm)

    const vhdPath = join(tmp, 'full.vhd')
    await downloadExport(xapi, { format: 'vhd', vdi: snap.ref }, vhdPath)
    const rawPath = join(tmp, 'full.raw')
    await createRaw(rawPath, 0)
    const summary = await readVhd(vhdPath, rawPath)

    assert.equal(summary.diskType, 3)
    assert.equal(summary.uuid, snap.uuid)
    assert.equal(summary.size, 24 * MiB)
    assert.deepEqual(summary.blocks, blocksOf(writes))
    assert.equal(await sha256File(rawPath), await pool.sim.hashVdi(snap.uuid))
  })

  it('exports a differencing VHD holding exactly the changed blocks; applied over its base it equals the new disk', async () => {
    const { vm, vdi } = await vmWithDisk(32 * MiB, [[0, 4 * MiB], [20 * MiB, MiB]])
    const base = await snapshotDisk(vm)

    const changes = [[1 * MiB, 512], [9 * MiB, 64 * 1024], [30 * MiB + 100, 1000]] as const
    for (const [offset, length] of changes) await pool.sim.writeGuest(vdi, offset, randomBytes(length))
    // rewriting a block with the bytes it already holds is not a change
    const same = await readFile(pool.sim.vdiPath(vdi)).then(buffer => buffer.subarray(20 * MiB, 20 * MiB + 4096))
    await pool.sim.writeGuest(vdi, 20 * MiB, same)
    const next = await snapshotDisk(vm)

    const fullPath = join(tmp, 'base.vhd')
    const deltaPath = join(tmp, 'delta.vhd')
    await downloadExport(xapi, { format: 'vhd', vdi: base.ref }, fullPath)
    await downloadExport(xapi, { format: 'vhd', vdi: next.ref, base: base.ref }, deltaPath)

    const rawPath = join(tmp, 'chain.raw')
    await createRaw(rawPath, 0)
    await readVhd(fullPath, rawPath)
    const delta = await readVhd(deltaPath, rawPath)
    assert.equal(delta.diskType, 4)
    assert.equal(delta.uuid, next.uuid)
    assert.equal(delta.parentUuid, base.uuid)
    assert.deepEqual(delta.blocks, blocksOf(changes))
    assert.equal(await sha256File(rawPath), await pool.sim.hashVdi(next.uuid))
    assert.notEqual(await pool.sim.hashVdi(next.uuid), await pool.sim.hashVdi(base.uuid))
    const exports = pool.sim.calls.filter(call => call.method === 'export_raw_vdi').map(call => call.params[0])
    assert.deepEqual(
      exports.map(query => {
        const { vdi, base, format } = query as Record<string, string>
        return { vdi, base, format }
      }),
      [
        { vdi: base.ref, base: undefined, format: 'vhd' },
        { vdi: next.ref, base: base.ref, format: 'vhd' },
      ]
    )
  })

  it('exports raw bytes with format=raw', async () => {
    const { vm } = await vmWithDisk(8 * MiB, [[4096, 8192], [7 * MiB, 4096]])
    const snap = await snapshotDisk(vm)
    const path = join(tmp, 'disk.raw')
    await downloadExport(xapi, { format: 'raw', vdi: snap.ref }, path)
    assert.equal((await stat(path)).size, 8 * MiB)
    assert.equal(await sha256File(path), await pool.sim.hashVdi(snap.uuid))
  })

  async function newVdi(size: number): Promise<{ ref: string; uuid: string }> {
    const srRef = await xapi.call<string>('SR.get_by_uuid', pool.sim.defaultSr())
    const ref = await xapi.call<string>('VDI.create', vdiCreateArgs({ name_label: 'imported', SR: srRef, virtual_size: size }))
    return { ref, uuid: pool.sim.record('VDI', ref).uuid }
  }

  it('imports a full then a differencing VHD: the disk equals the chain sent', async () => {
    const { vm, vdi } = await vmWithDisk(16 * MiB, [[0, MiB], [6 * MiB, 2 * MiB]])
    const base = await snapshotDisk(vm)
    await pool.sim.writeGuest(vdi, 11 * MiB, randomBytes(4096))
    const next = await snapshotDisk(vm)
    const fullPath = join(tmp, 'base.vhd')
    const deltaPath = join(tmp, 'delta.vhd')
    await downloadExport(xapi, { format: 'vhd', vdi: base.ref }, fullPath)
    await downloadExport(xapi, { format: 'vhd', vdi: next.ref, base: base.ref }, deltaPath)

    const target = await newVdi(16 * MiB)
    await uploadImport(xapi, { format: 'vhd', vdi: target.ref }, fullPath)
    assert.equal(await pool.sim.hashVdi(target.uuid), await pool.sim.hashVdi(base.uuid))
    await uploadImport(xapi, { format: 'vhd', vdi: target.ref }, deltaPath)
    assert.equal(await pool.sim.hashVdi(target.uuid), await pool.sim.hashVdi(next.uuid))
    assert.ok(pool.sim.calls.every(call => !call.method.startsWith('Async.') || call.error === undefined))
  })

  it('writes only the sectors a block bitmap marks', async () => {
    const size = 8 * MiB
    const target = await newVdi(10 * MiB) // the VHD's CHS geometry rounds its size up a little
    const old = randomBytes(10 * MiB)
    await pool.sim.writeGuest(target.uuid, 0, old)

    // a VHD built by vhd-lib from 64 KiB fragments: partially filled blocks
    const fragment = 64 * 1024
    const addresses = [0, 5, 40, 63] // fragment indexes (blocks 0 and 1)
    const fragments = addresses.map(index => ({ logicalAddressBytes: index * fragment, data: randomBytes(fragment) }))
    const require = createRequire(import.meta.url)
    const { createReadableSparseStream } = require('vhd-lib') as {
      createReadableSparseStream(size: number, fragmentSize: number, addresses: number[], fragments: Iterable<unknown>): Promise<Readable>
    }
    const vhdPath = join(tmp, 'fragments.vhd')
    await pipeline(await createReadableSparseStream(size, fragment, addresses, fragments), createWriteStream(vhdPath))
    await uploadImport(xapi, { format: 'vhd', vdi: target.ref }, vhdPath)

    const expected = Buffer.from(old)
    for (const { logicalAddressBytes, data } of fragments) data.copy(expected, logicalAddressBytes)
    assert.equal(await pool.sim.hashVdi(target.uuid), createHash('sha256').update(expected).digest('hex'))
  })

  it('imports raw bytes and answers the empty probe PUT', async () => {
    const size = 4 * MiB
    const target = await newVdi(size)
    const rawPath = join(tmp, 'in.raw')
    await writeFile(rawPath, randomBytes(size))
    await uploadImport(xapi, { format: 'raw', vdi: target.ref }, rawPath)
    assert.equal(await pool.sim.hashVdi(target.uuid), await sha256File(rawPath))

    const probe = await fetch(`${pool.url}/import_raw_vdi/?format=raw&vdi=${target.ref}&session_id=${xapi.sessionId}`, {
      method: 'PUT',
      body: '',
    })
    assert.equal(probe.status, 200)
    assert.equal(await pool.sim.hashVdi(target.uuid), await sha256File(rawPath), 'the probe writes nothing')
  })

  for (const sizeGiB of [100, 2040]) it(`snapshots and exports a ${sizeGiB} GiB sparse disk at the cost of its written data`, async () => {
    const size = sizeGiB * GiB
    const writes = [[0, MiB], [37 * GiB + 12345, 2 * MiB], [size - 5 * MiB, 3 * MiB]] as const
    const { vm } = await vmWithDisk(size, writes)
    const started = Date.now()
    const snap = await snapshotDisk(vm)
    const vhdPath = join(tmp, 'big.vhd')
    await downloadExport(xapi, { format: 'vhd', vdi: snap.ref }, vhdPath)
    const elapsed = Date.now() - started
    assert.ok(elapsed < 15_000, `snapshot + export took ${elapsed} ms`)

    const summary = await readVhd(vhdPath)
    assert.equal(summary.size, size)
    assert.deepEqual(summary.blocks, blocksOf(writes))
    assert.ok((await stat(vhdPath)).size < 16 * MiB + (size / (2 * MiB)) * 4, 'blocks and BAT only')

    // each exported block equals the disk there (the disk is too large to hash whole)
    const exported = join(tmp, 'big.raw')
    await createRaw(exported, 0)
    await readVhd(vhdPath, exported)
    const copy = await open(exported, 'r')
    try {
      for (const block of summary.blocks) {
        const a = await pool.sim.readVdi(snap.uuid, block * BLOCK, BLOCK)
        const b = Buffer.alloc(BLOCK)
        await copy.read(b, 0, BLOCK, block * BLOCK)
        assert.ok(a.equals(b), `block ${block}`)
        assert.ok(a.some(byte => byte !== 0), `block ${block} holds data`)
      }
    } finally {
      await copy.close()
    }
  })
})
