import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

describe('host double: pools (getXapi and XO objects) against simulated pools', function () {
  let pool1: SimulatedPool
  let pool2: SimulatedPool
  let host: HostDouble
  let admin: XoClient

  before(async function () {
    pool1 = await startSimulatedPool()
    pool2 = await startSimulatedPool()
    host = await startHostDouble({ pluginDir: TRIVIAL, pools: [{ url: pool1.url, user: pool1.user, password: pool1.password }] })
    admin = await host.signIn()
    // the second pool is added through the API, as a user would: it connects in the background
    const id = await admin.call<string>('server.add', { host: pool2.url, username: pool2.user, password: pool2.password, label: 'second' })
    await waitUntil(async () => (await admin.call<{ id: string; status: string }[]>('server.getAll')).find(_ => _.id === id)?.status === 'connected')
  })

  after(async function () {
    await host?.close()
    await pool1?.close()
    await pool2?.close()
  })

  it('lists both servers as connected, with their pool uuid', async function () {
    const servers = await admin.call<{ host: string; status: string; poolId: string; label: string }[]>('server.getAll')
    const poolUuid = (p: SimulatedPool): string => p.sim.all('pool')[0]!.uuid
    assert.deepEqual(
      servers.map(({ host, status, poolId }) => ({ host, status, poolId })),
      [
        { host: pool1.url, status: 'connected', poolId: poolUuid(pool1) },
        { host: pool2.url, status: 'connected', poolId: poolUuid(pool2) },
      ]
    )
    assert.equal(servers[1]!.label, 'second')
    assert.equal(Object.keys(host.app.getAllXapis()).length, 2)
  })

  it('getXapi(uuid) finds the pool holding the object, across pools, and the client talks to it', async function () {
    for (const pool of [pool1, pool2]) {
      const vm = pool.sim.findVm('vm1')
      const xapi = host.app.getXapi(vm.uuid)
      assert.equal(xapi.pool.uuid, pool.sim.all('pool')[0]!.uuid)
      // a real call over the wire, answered by that pool
      assert.equal(await xapi.call('VM.get_uuid', vm.$ref), vm.uuid)
      // the XO object of the same VM resolves to the same client
      assert.equal(host.app.getXapi(host.app.getObject(vm.uuid, 'VM')), xapi)
    }
  })

  it('getObject / getXapiObject / getObjects expose the cached records with XO types', async function () {
    const vm = pool1.sim.findVm('vm1')
    const object = host.app.getObject(vm.uuid, 'VM')
    assert.equal(object.type, 'VM')
    assert.equal(object.name_label, 'vm1')
    assert.equal(object.$pool, pool1.sim.all('pool')[0]!.uuid)
    assert.equal(object._xapiRef, vm.$ref)

    const [vdi] = pool1.sim.vdisOf(vm.uuid)
    const record = host.app.getXapiObject(vdi!.uuid, 'VDI')
    assert.equal(record.$ref, vdi!.$ref)
    assert.equal(record['name_label'], vdi!['name_label'])

    const vms = Object.values(host.app.getObjects({ filter: { type: 'VM' } }))
    const names = vms.map(_ => `${_.$pool === object.$pool ? 1 : 2}:${_.name_label}`).sort()
    assert.deepEqual(names, ['1:vm1', '1:vm2', '2:vm1', '2:vm2'])
  })

  it('shows a pool that cannot be reached as disconnected, with the error', async function () {
    const id = await admin.call<string>('server.add', { host: 'http://127.0.0.1:1', username: 'root', password: 'x' })
    await waitUntil(async () => (await admin.call<{ id: string; error?: string }[]>('server.getAll')).find(_ => _.id === id)?.error !== undefined)
    const server = (await admin.call<{ id: string; status: string; error: string }[]>('server.getAll')).find(_ => _.id === id)!
    assert.equal(server.status, 'disconnected')
    assert.match(server.error, /ECONNREFUSED|connect/)
    await admin.call('server.remove', { id })
    assert.equal(Object.keys(host.app.getAllXapis()).length, 2)
  })

  it('resolves ids into XO objects for methods declaring `resolve` (admins only: no ACLs)', async function () {
    const vm = pool2.sim.findVm('vm2')
    const remove = host.app.addApiMethod(
      'probe.vmName',
      Object.assign((params: Record<string, unknown>) => (params['vm'] as { name_label: string; $pool: string }).name_label, {
        params: { id: { type: 'string' } },
        resolve: { vm: ['id', 'VM', 'administrate'] } as const,
        permission: undefined,
      })
    )
    try {
      // `vm=<id>` is accepted for a method declaring `id`, as xo-server does
      assert.equal(await admin.call('probe.vmName', { probe: vm.uuid }), 'vm2')
      assert.equal(await admin.call('probe.vmName', { id: vm.uuid }), 'vm2')
      await assert.rejects(admin.call('probe.vmName', { id: pool2.sim.defaultSr() }), (error: { code: number }) => error.code === 1)
      const user = await host.signIn('user@example.net', 'user')
      await assert.rejects(user.call('probe.vmName', { id: vm.uuid }), (error: { code: number; data: { object: { id: string } } }) => error.code === 2 && error.data.object.id === vm.uuid)
      await user.close()
    } finally {
      remove()
    }
  })

  it('answers a XAPI error a method lets through with the XO error xo-server translates it to', async function () {
    const vm = pool1.sim.findVm('vm1')
    const [vdi] = pool1.sim.vdisOf(vm.uuid)
    const remove = host.app.addApiMethod(
      'probe.vdiUuid',
      Object.assign(
        async function (this: typeof host.app, { id }: Record<string, unknown>) {
          const record = this.getXapiObject(String(id), 'VDI')
          return this.getXapi(String(id)).call('VDI.get_uuid', record.$ref)
        },
        { params: { id: { type: 'string' } }, permission: 'admin' as const }
      )
    )
    try {
      assert.equal(await admin.call('probe.vdiUuid', { id: vdi!.uuid }), vdi!.uuid)
      pool1.sim.faults.failNextCall('VDI.get_uuid', 'VDI_IN_USE', [vdi!.$ref, 'destroy'])
      await assert.rejects(admin.call('probe.vdiUuid', { id: vdi!.uuid }), (error: { code: number; data: unknown }) => {
        assert.equal(error.code, 17)
        assert.deepEqual(error.data, { objectId: vdi!.uuid, operation: 'destroy' })
        return true
      })
    } finally {
      pool1.sim.faults.reset()
      remove()
    }
  })

  it('throws XO noSuchObject for an unknown id or the wrong type', function () {
    const vm = pool1.sim.findVm('vm1')
    assert.throws(() => host.app.getXapi('00000000-0000-0000-0000-000000000000'), (error: { code: number }) => error.code === 1)
    assert.throws(() => host.app.getObject(vm.uuid, 'SR'), (error: { code: number }) => error.code === 1)
  })
})
