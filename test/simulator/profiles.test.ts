/** Each pool profile plays its version as a whole: what it reports, its methods' parameters, its data model, its locks. */
import assert from 'node:assert/strict'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { DEFAULT_PROFILE, PROFILES, type ProfileName } from './profiles.js'

const EXPECTED: Record<ProfileName, { version: string; brand: string; ignoreVdis: boolean; vtpm: boolean; nvram: boolean; biosStrings: boolean; cbt: boolean; nbd: boolean }> = {
  'xenserver-6.2': { version: '6.2.0', brand: 'XenServer', ignoreVdis: false, vtpm: false, nvram: false, biosStrings: false, cbt: false, nbd: false },
  'xenserver-6.5': { version: '6.5.0', brand: 'XenServer', ignoreVdis: false, vtpm: false, nvram: false, biosStrings: false, cbt: false, nbd: false },
  'xenserver-7.1': { version: '7.1.2', brand: 'XenServer', ignoreVdis: false, vtpm: false, nvram: false, biosStrings: false, cbt: false, nbd: false },
  'citrix-hypervisor-8.2': { version: '8.2.1', brand: 'Citrix Hypervisor', ignoreVdis: false, vtpm: false, nvram: true, biosStrings: true, cbt: true, nbd: false },
  'xcp-ng-8.3': { version: '8.3.0', brand: 'XCP-ng', ignoreVdis: true, vtpm: true, nvram: true, biosStrings: true, cbt: true, nbd: false },
  'xcp-ng-8.3-nbd': { version: '8.3.0', brand: 'XCP-ng', ignoreVdis: true, vtpm: true, nvram: true, biosStrings: true, cbt: true, nbd: true },
}

describe('simulated pool profiles', () => {
  it('the default inventory plays the oldest supported version, XenServer 6.5', () => {
    assert.equal(DEFAULT_PROFILE, 'xenserver-6.5')
  })

  for (const name of Object.keys(PROFILES) as ProfileName[]) {
    describe(`profile ${name}`, () => {
      let pool: SimulatedPool
      let xapi: Xapi
      const expected = EXPECTED[name]

      before(async () => {
        pool = await startSimulatedPool({ profile: name })
        xapi = await connectXapi(pool)
      })
      after(async () => {
        await xapi.disconnect()
        await pool.close()
      })

      it(`reports ${expected.brand} ${expected.version}; VM.snapshot ${expected.ignoreVdis ? 'takes' : 'refuses'} ignore_vdis`, async () => {
        const master = xapi.getObjectByRef(xapi.pool.master as string) as unknown as { software_version: Record<string, string> }
        assert.equal(master.software_version.product_version, expected.version)
        assert.equal(master.software_version.product_brand, expected.brand)
        const vm = pool.sim.findVm('vm2')
        if (expected.ignoreVdis) {
          await xapi.callAsync('VM.snapshot', vm.$ref, 'three', [])
        } else {
          await assert.rejects(xapi.callAsync('VM.snapshot', vm.$ref, 'three', []), { code: 'MESSAGE_PARAMETER_COUNT_MISMATCH' })
        }
        await xapi.callAsync('VM.snapshot', vm.$ref, 'two')
      })

      it(`${expected.vtpm ? 'serves' : 'has no'} VTPM class; VM records ${expected.nvram ? 'carry' : 'lack'} NVRAM and domain_type; VM.set_bios_strings ${expected.biosStrings ? 'exists' : 'is unknown'}`, async () => {
        const methods = await xapi.call<string[]>('system.listMethods')
        assert.equal(methods.includes('VTPM.get_all_records'), expected.vtpm)
        if (!expected.vtpm) await assert.rejects(xapi.call('VTPM.get_all'), { code: 'MESSAGE_METHOD_UNKNOWN' })
        const vm = await xapi.call<Record<string, unknown>>('VM.get_record', pool.sim.findVm('vm1').$ref)
        assert.equal('NVRAM' in vm, expected.nvram)
        assert.equal('domain_type' in vm, expected.nvram)
        if (!expected.nvram) await assert.rejects(xapi.call('VM.get_NVRAM', pool.sim.findVm('vm1').$ref), { code: 'MESSAGE_METHOD_UNKNOWN' })
        const setBios = xapi.call('VM.set_bios_strings', pool.sim.findVm('vm2').$ref, { 'bios-vendor': 'Xen' })
        if (expected.biosStrings) await setBios
        else await assert.rejects(setBios, { code: 'MESSAGE_METHOD_UNKNOWN' })
      })

      it(`${expected.cbt ? 'has' : 'lacks'} changed block tracking; VDI.get_nbd_info ${expected.nbd ? 'gives the NBD server (network purpose nbd)' : expected.cbt ? 'is empty' : 'is unknown'}`, async () => {
        const [disk] = pool.sim.vdisOf(pool.sim.findVm('vm2').uuid)
        const methods = await xapi.call<string[]>('system.listMethods')
        assert.equal(methods.includes('VDI.list_changed_blocks'), expected.cbt)
        const vdi = await xapi.call<Record<string, unknown>>('VDI.get_record', disk!.$ref)
        assert.equal('cbt_enabled' in vdi, expected.cbt)
        const info = xapi.call<{ address: string; cert: string; subject: string }[]>('VDI.get_nbd_info', disk!.$ref)
        if (!expected.cbt) {
          await assert.rejects(info, { code: 'MESSAGE_METHOD_UNKNOWN' })
          await assert.rejects(xapi.call('VDI.enable_cbt', disk!.$ref), { code: 'MESSAGE_METHOD_UNKNOWN' })
          return
        }
        const entries = await info
        assert.equal(entries.length, expected.nbd ? 1 : 0)
        if (expected.nbd) assert.match(entries[0]!.cert, /BEGIN CERTIFICATE/)
      })
    })
  }

  describe('quirks every profile has', () => {
    let pool: SimulatedPool
    let xapi: Xapi

    before(async () => {
      pool = await startSimulatedPool()
      xapi = await connectXapi(pool)
    })
    after(async () => {
      await xapi.disconnect()
      await pool.close()
    })

    it('a VDI just exported answers VDI_IN_USE for the next destroys, plugged into the control domain meanwhile', async () => {
      const vm = pool.sim.findVm('vm2')
      const snapshot = await xapi.callAsync<string>('VM.snapshot', vm.$ref, 'export me')
      const [disk] = pool.sim.vdisOf(pool.sim.record('VM', snapshot).uuid)
      const response = (await xapi.getResource('/export_raw_vdi/', { query: { format: 'vhd', vdi: disk!.$ref }, task: true })) as unknown as { body: AsyncIterable<Buffer>; task: Promise<unknown> }
      for await (const _chunk of response.body) {
        // drained
      }
      await response.task
      const dom0 = pool.sim.all('VM').find(record => record.is_control_domain === true)!
      const plugged = (pool.sim.record('VDI', disk!.uuid).VBDs as string[]).map(ref => pool.sim.record('VBD', ref))
      assert.ok(plugged.some(vbd => vbd.VM === dom0.$ref && vbd.currently_attached === true), 'plugged into dom0')
      for (let attempt = 0; attempt < pool.sim.profile.quirks.vdiInUseAfterExport; attempt++) {
        await assert.rejects(xapi.callAsync('VDI.destroy', disk!.$ref), { code: 'VDI_IN_USE' })
      }
      await xapi.callAsync('VDI.destroy', disk!.$ref)
      assert.throws(() => pool.sim.record('VDI', disk!.uuid))
    })

    it('an object another client holds answers OTHER_OPERATION_IN_PROGRESS until released', async () => {
      const vm = pool.sim.findVm('vm2')
      const release = pool.sim.holdOperation('VM', vm.uuid, 'snapshot')
      await assert.rejects(xapi.callAsync('VM.snapshot', vm.$ref, 'busy'), { code: 'OTHER_OPERATION_IN_PROGRESS' })
      assert.deepEqual(Object.values(pool.sim.findVm('vm2').current_operations as object), ['snapshot'])
      release()
      await xapi.callAsync('VM.snapshot', vm.$ref, 'free')
    })

    it('a pool full of pending tasks answers TOO_MANY_PENDING_TASKS to calls creating one, plain calls still work', async () => {
      const release = pool.sim.occupyPendingTasks()
      try {
        await assert.rejects(xapi.callAsync('VM.snapshot', pool.sim.findVm('vm2').$ref, 'busy'), { code: 'TOO_MANY_PENDING_TASKS' })
        await assert.rejects(xapi.call('task.create', 'mine', ''), { code: 'TOO_MANY_PENDING_TASKS' })
        await xapi.call('VM.get_record', pool.sim.findVm('vm2').$ref)
      } finally {
        release()
      }
      await xapi.callAsync('VM.snapshot', pool.sim.findVm('vm2').$ref, 'free')
    })

    it('an export can answer 200 OK with a whole HTTP error answer as its body', async () => {
      const [disk] = pool.sim.vdisOf(pool.sim.findVm('vm2').uuid)
      pool.sim.faults.answerExportWithHtmlError()
      const response = (await xapi.getResource('/export_raw_vdi/', { query: { format: 'vhd', vdi: disk!.$ref }, task: true })) as unknown as { body: AsyncIterable<Buffer>; statusCode: number }
      let body = ''
      for await (const chunk of response.body) body += chunk.toString()
      assert.equal(response.statusCode, 200)
      assert.match(body, /^HTTP\/1\.1 500 Internal Error\r\n/)
      assert.match(body, /<html>.*SR_BACKEND_FAILURE_46/)
    })
  })
})
