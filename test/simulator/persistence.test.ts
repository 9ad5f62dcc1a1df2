import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connectXapi } from '../helpers/pool.js'
import { Simulator } from './simulator.js'

describe('simulated pool saved across restarts', () => {
  let dataDir: string

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'sim-persist-'))
  })
  afterEach(() => rm(dataDir, { recursive: true, force: true }))

  it('finds its VMs, snapshots and disks again after a restart', async () => {
    const first = await Simulator.start({ dataDir, persist: true })
    const xapi = await connectXapi(first)
    const vm = first.findVm('vm1')
    const snapshot = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'kept')
    await xapi.call('VM.add_to_other_config', vm.$ref, 'xo:mark', 'set')
    const [disk] = first.vdisOf(vm.uuid)
    const snapshotDisks = first.vdisOf(first.record('VM', snapshot).uuid)
    const taken = await Promise.all(snapshotDisks.map(vdi => first.hashVdi(vdi.uuid)))
    // copy-on-write: what the snapshot reads through its disk is found again after the restart
    await first.writeGuest(disk!.uuid, 4096, randomBytes(8192))
    const hashes = await Promise.all(first.all('VDI').map(async vdi => [vdi.uuid, await first.hashVdi(vdi.uuid)]))
    const records = first.all('VM').map(record => [record.uuid, record.name_label, record.snapshot_of])
    await xapi.disconnect()
    await first.close()

    const second = await Simulator.start({ dataDir, persist: true, profile: 'xenserver-7.1' })
    try {
      assert.deepEqual(second.all('VM').map(record => [record.uuid, record.name_label, record.snapshot_of]), records)
      assert.equal((second.findVm('vm1').other_config as Record<string, string>)['xo:mark'], 'set')
      assert.equal(second.record('VM', snapshot).is_a_snapshot, true)
      for (const [uuid, hash] of hashes) assert.equal(await second.hashVdi(uuid!), hash)
      assert.deepEqual(await Promise.all(snapshotDisks.map(vdi => second.hashVdi(vdi.uuid))), taken)
      await second.writeGuest(disk!.uuid, 0, randomBytes(64 * 1024))
      assert.deepEqual(await Promise.all(snapshotDisks.map(vdi => second.hashVdi(vdi.uuid))), taken)
      assert.deepEqual(second.all('task'), [])

      const client = await connectXapi(second)
      try {
        const master = client.getObjectByRef(client.pool.master as string) as unknown as { software_version: Record<string, string> }
        assert.equal(master.software_version.product_version, '7.1.2')
        await client.callAsync('VM.snapshot', second.findVm('vm1').$ref, 'after restart')
      } finally {
        await client.disconnect()
      }
    } finally {
      await second.close()
    }
  })

  it('seeds a new pool when nothing was saved, and saves nothing unless asked', async () => {
    const unsaved = await Simulator.start({ dataDir })
    const uuid = unsaved.findVm('vm1').uuid
    await unsaved.close()
    const next = await Simulator.start({ dataDir, persist: true })
    try {
      assert.notEqual(next.findVm('vm1').uuid, uuid)
    } finally {
      await next.close()
    }
  })
})
