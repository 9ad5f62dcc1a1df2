/**
 * Cross-checks the simulator's VHD handling with an independent implementation, qemu-img
 * (qemu-utils): exported VHDs convert back to the disk's bytes, and a VHD qemu-img wrote imports
 * to the bytes it was made from.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { downloadExport, sha256File, uploadImport, vdiCreateArgs } from './test-support.js'

const run = promisify(execFile)
const MiB = 1024 ** 2

describe('simulated pool exports, checked with qemu-img', () => {
  let pool: SimulatedPool
  let xapi: Xapi
  let tmp: string

  before(async () => {
    pool = await startSimulatedPool({ inventory: 'empty' })
    xapi = await connectXapi(pool)
    tmp = await mkdtemp(join(tmpdir(), 'sim-oracle-'))
  })
  after(async () => {
    await xapi.disconnect()
    await pool.close()
    await rm(tmp, { recursive: true, force: true })
  })

  for (const size of [24 * MiB, 64 * MiB + 512 * 1024]) {
    it(`a full export of a ${size} byte disk converts back to the same bytes`, async () => {
      const { vm, vdis } = pool.sim.createVm({ name: `guest-${size}`, disks: [{ name: 'disk', size }] })
      for (const offset of [0, 3 * MiB + 17 * 512, size - 300 * 1024]) await pool.sim.writeGuest(vdis[0]!, offset, randomBytes(200 * 1024))
      const snapshot = await xapi.callAsync<string>('VM.snapshot', pool.sim.record('VM', vm).$ref, 'oracle')
      const [disk] = pool.sim.vdisOf(pool.sim.record('VM', snapshot).uuid)

      const vhdPath = join(tmp, `${size}.vhd`)
      const rawPath = join(tmp, `${size}.raw`)
      await downloadExport(xapi, { format: 'vhd', vdi: disk!.$ref }, vhdPath)
      const { stdout } = await run('qemu-img', ['info', '--output=json', '-f', 'vpc', vhdPath])
      assert.equal((JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'] >= size, true)
      await run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', vhdPath, rawPath])
      await run('truncate', ['-s', String(size), rawPath]) // vpc rounds the size to its CHS geometry
      assert.equal(await sha256File(rawPath), await pool.sim.hashVdi(disk!.uuid))
    })
  }

  it('a dynamic VHD written by qemu-img imports to the same bytes', async () => {
    const size = 20 * MiB
    const rawPath = join(tmp, 'source.raw')
    const file = await open(rawPath, 'w')
    await file.truncate(size)
    for (const offset of [512, 4 * MiB + 3, 19 * MiB]) await file.write(randomBytes(300 * 1024), 0, 300 * 1024, offset)
    await file.close()
    const vhdPath = join(tmp, 'qemu.vhd')
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic,force_size=on', rawPath, vhdPath])

    const srRef = await xapi.call<string>('SR.get_by_uuid', pool.sim.defaultSr())
    const vdiRef = await xapi.call<string>('VDI.create', vdiCreateArgs({ name_label: 'from qemu', SR: srRef, virtual_size: size }))
    await uploadImport(xapi, { format: 'vhd', vdi: vdiRef }, vhdPath)
    assert.equal(await pool.sim.hashVdi(pool.sim.record('VDI', vdiRef).uuid), await sha256File(rawPath))
  })
})
