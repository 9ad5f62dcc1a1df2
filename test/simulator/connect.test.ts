import assert from 'node:assert/strict'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { CLASSES } from './classes/index.js'

const XAPI_DATE = /^\d{8}T\d{2}:\d{2}:\d{2}Z$/
const DATE_FIELDS = ['snapshot_time', 'created', 'finished', 'last_updated', 'start_time', 'install_time', 'timestamp']

describe('simulated pool: connection and inventory', () => {
  let pool: SimulatedPool
  let xapi: Xapi

  before(async () => {
    pool = await startSimulatedPool({ profile: 'xenserver-6.5' })
    xapi = await connectXapi(pool)
  })
  after(async () => {
    await xapi.disconnect()
    await pool.close()
  })

  it('lets the real xen-api client connect and fill its cache with the inventory', () => {
    assert.equal(xapi.status, 'connected')
    const objects = Object.values(xapi.objects.all)
    const vms = objects.filter(o => o.$type === 'VM' && o.is_control_domain !== true)
    assert.deepEqual(vms.map(vm => vm.name_label).sort(), ['vm1', 'vm2'])
    const vm1 = vms.find(vm => vm.name_label === 'vm1') as unknown as { $VBDs: { type: string; $VDI?: { name_label: string } }[]; $VIFs: { MAC: string }[] }
    assert.deepEqual(
      vm1.$VBDs.map(vbd => `${vbd.type}:${vbd.$VDI?.name_label ?? ''}`),
      ['Disk:system', 'Disk:[NOBAK] scratch', 'CD:']
    )
    assert.match(vm1.$VIFs[0]!.MAC, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/)
    assert.ok(objects.some(o => o.$type === 'VM' && o.is_control_domain === true), 'a control domain')
    for (const type of ['pool', 'host', 'host_metrics', 'SR', 'PBD', 'SM', 'network', 'PIF', 'PIF_metrics', 'VM_metrics', 'VM_guest_metrics']) {
      assert.ok(objects.some(o => o.$type === type), `a ${type} record`)
    }
  })

  it('reports the configured product version and brand, and changes them on demand', async () => {
    const master = xapi.getObjectByRef(xapi.pool.master as string) as unknown as { software_version: Record<string, string> }
    assert.equal(master.software_version.product_version, '6.5.0')
    assert.equal(master.software_version.product_brand, 'XenServer')
    assert.equal(typeof master.software_version.platform_version, 'string')

    pool.sim.setSoftwareVersion({ product_version: '7.1.2' })
    const hostRef = xapi.pool.master as string
    const version = await xapi.call<Record<string, string>>('host.get_software_version', hostRef)
    assert.equal(version.product_version, '7.1.2')
    assert.equal(version.product_brand, 'XenServer')
  })

  it('gives every record of a class the full field set of that class', async () => {
    const { absentClasses, absentFields } = pool.sim.profile
    for (const spec of CLASSES.values()) {
      if (absentClasses.includes(spec.name)) continue
      const records = await xapi.call<Record<string, Record<string, unknown>>>(`${spec.name}.get_all_records`)
      const expected = Object.keys(spec.defaults())
        .filter(field => !(absentFields[spec.name] ?? []).includes(field))
        .sort()
      for (const [ref, record] of Object.entries(records)) {
        assert.deepEqual(Object.keys(record).sort(), expected, `${spec.name} ${ref}`)
        for (const field of DATE_FIELDS) {
          if (field in record) assert.match(String(record[field]), XAPI_DATE, `${spec.name}.${field}`)
        }
        for (const [field, value] of Object.entries(record)) {
          assert.notEqual(value, null, `${spec.name}.${field} is null`)
          assert.notEqual(value, undefined, `${spec.name}.${field} is undefined`)
        }
      }
    }
  })

  it('answers the generic getters, setters and map editors, with events the client sees', async () => {
    const vm = pool.sim.findVm('vm2')
    assert.equal(await xapi.call('VM.get_by_uuid', vm.uuid), vm.$ref)
    assert.equal(await xapi.call('VM.get_name_label', vm.$ref), 'vm2')
    await xapi.call('VM.set_name_label', vm.$ref, 'renamed')
    await xapi.call('VM.add_to_other_config', vm.$ref, 'xo:test', 'yes')
    await xapi.call('VM.add_tags', vm.$ref, 'tagged')
    await xapi.call('VM.add_to_blocked_operations', vm.$ref, 'destroy', 'protected')
    await xapi.barrier(vm.$ref)
    const cached = xapi.getObjectByUuid(vm.uuid)
    assert.equal(cached.name_label, 'renamed')
    assert.deepEqual(cached.tags, ['tagged'])
    assert.equal((cached.other_config as Record<string, string>)['xo:test'], 'yes')
    assert.equal((cached.blocked_operations as Record<string, string>).destroy, 'protected')

    await xapi.call('VM.remove_from_other_config', vm.$ref, 'xo:test')
    await xapi.call('VM.remove_tags', vm.$ref, 'tagged')
    const record = await xapi.call<Record<string, unknown>>('VM.get_record', vm.$ref)
    assert.deepEqual(record.tags, [])
    assert.equal('xo:test' in (record.other_config as object), false)
    assert.ok(pool.sim.calls.some(call => call.method === 'VM.set_name_label' && call.params[1] === 'renamed'))
  })

  it('answers errors in XAPI format', async () => {
    await assert.rejects(xapi.call('VM.get_record', 'OpaqueRef:nope'), {
      code: 'HANDLE_INVALID',
      params: ['VM', 'OpaqueRef:nope'],
    })
    await assert.rejects(xapi.call('VM.frobnicate', 'OpaqueRef:nope'), { code: 'MESSAGE_METHOD_UNKNOWN', params: ['VM.frobnicate'] })
    await assert.rejects(xapi.call('SR.get_by_uuid', 'no-such-uuid'), { code: 'UUID_INVALID' })
    const poolRef = xapi.pool.$ref
    await xapi.call('pool.add_to_other_config', poolRef, 'k', 'v')
    await assert.rejects(xapi.call('pool.add_to_other_config', poolRef, 'k', 'w'), {
      code: 'MAP_DUPLICATE_KEY',
      params: ['pool', 'other_config', poolRef, 'k'],
    })

    // the raw wire form: error.message is the code, error.data the parameters
    const response = await fetch(`${pool.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'session.login_with_password', params: ['root', 'wrong'] }),
    })
    assert.equal(response.headers.get('content-type'), 'application/json')
    const body = (await response.json()) as { id: number; error: { code: number; message: string; data: string[] } }
    assert.equal(body.id, 7)
    assert.equal(body.error.message, 'SESSION_AUTHENTICATION_FAILED')
    assert.deepEqual(body.error.data, ['root', 'Authentication failure'])
    assert.equal(typeof body.error.code, 'number')
  })

  it('runs Async calls through tasks and answers host.get_servertime', async () => {
    const time = await xapi.call<string>('host.get_servertime', xapi.pool.master as string)
    assert.match(time, XAPI_DATE)
    const vm2 = pool.sim.findVm('renamed')
    await xapi.callAsync('VM.start', vm2.$ref)
    assert.equal(pool.sim.record('VM', vm2.uuid).power_state, 'Running')
    await assert.rejects(xapi.callAsync('VM.start', vm2.$ref), { code: 'VM_BAD_POWER_STATE' })
    const tasks = pool.sim.all('task').filter(task => task.name_label === 'Async.VM.start')
    assert.ok(tasks.every(task => task.status !== 'pending'))
  })
})
