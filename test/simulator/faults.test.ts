import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'

import { connectXapi, startSimulatedPool, type SimulatedPool, type Xapi } from '../helpers/pool.js'
import { downloadExport, readVhd, uploadImport, vdiCreateArgs } from './test-support.js'

const MiB = 1024 ** 2

describe('simulated pool: faults on demand', () => {
  let pool: SimulatedPool
  let xapi: Xapi
  let tmp: string
  let vdi: { ref: string; uuid: string }

  beforeEach(async () => {
    pool = await startSimulatedPool({ inventory: 'empty' })
    xapi = await connectXapi(pool)
    tmp = await mkdtemp(join(tmpdir(), 'sim-faults-'))
    const { vdis } = pool.sim.createVm({ name: 'guest', disks: [{ name: 'disk', size: 16 * MiB }] })
    await pool.sim.writeGuest(vdis[0]!, 0, randomBytes(6 * MiB))
    vdi = { ref: pool.sim.record('VDI', vdis[0]!).$ref, uuid: vdis[0]! }
    await xapi.barrier()
  })
  afterEach(async () => {
    await xapi.disconnect()
    await pool.close()
    await rm(tmp, { recursive: true, force: true })
  })

  async function exportBody(query: Record<string, string>): Promise<{ body: Readable; task: Promise<unknown> }> {
    return (await xapi.getResource('/export_raw_vdi/', { query })) as unknown as { body: Readable; task: Promise<unknown> }
  }

  it('cuts an export after N bytes and fails its task', async () => {
    pool.sim.faults.cutExportAfter(100_000)
    const { body, task } = await exportBody({ format: 'vhd', vdi: vdi.ref })
    let received = 0
    await assert.rejects(
      (async () => {
        for await (const chunk of body as AsyncIterable<Buffer>) received += chunk.length
      })()
    )
    assert.ok(received <= 100_000, `received ${received}`)
    await assert.rejects(task, { code: 'VDI_IO_ERROR' })

    // one-shot: the next export is whole
    const path = join(tmp, 'whole.vhd')
    await downloadExport(xapi, { format: 'vhd', vdi: vdi.ref }, path)
    assert.equal((await readVhd(path)).blocks.length, 3)
  })

  it('stalls an export, then completes it', async () => {
    pool.sim.faults.stallExport(700)
    const { body, task } = await exportBody({ format: 'raw', vdi: vdi.ref })
    let first: number | undefined
    let received = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      first ??= Date.now()
      received += chunk.length
    }
    assert.ok(Date.now() - first! >= 650, `stalled ${Date.now() - first!} ms`)
    assert.equal(received, 16 * MiB)
    await task
  })

  it('ends a stalled export as soon as the client gives up', async () => {
    pool.sim.faults.stallExport(60_000)
    const task = await xapi.call<string>('task.create', 'export', '')
    const controller = new AbortController()
    const response = await fetch(
      `${pool.url}/export_raw_vdi/?format=vhd&vdi=${vdi.ref}&session_id=${xapi.sessionId}&task_id=${task}`,
      { signal: controller.signal }
    )
    const reader = response.body!.getReader()
    assert.equal((await reader.read()).done, false)
    const started = Date.now()
    controller.abort()
    while (pool.sim.record('task', task).status === 'pending') {
      assert.ok(Date.now() - started < 5_000, 'the task is still pending')
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    assert.deepEqual(pool.sim.record('task', task).error_info, ['VDI_IO_ERROR', 'client closed the connection'])
  })

  it('fails the next call or task of a method with the code given', async () => {
    const vm = pool.sim.findVm('guest')
    pool.sim.faults.failNextCall('VM.snapshot', 'SR_BACKEND_FAILURE_44', ['', 'There is insufficient space'])
    await assert.rejects(xapi.callAsync('VM.snapshot', vm.$ref, 'backup'), {
      code: 'SR_BACKEND_FAILURE_44',
      params: ['', 'There is insufficient space'],
    })
    assert.equal(pool.sim.all('VM').filter(record => record.is_a_snapshot === true).length, 0)
    await xapi.callAsync('VM.snapshot', vm.$ref, 'backup')

    pool.sim.faults.failNextCall('VM.get_name_label', 'INTERNAL_ERROR', ['boom'])
    await assert.rejects(xapi.call('VM.get_name_label', vm.$ref), { code: 'INTERNAL_ERROR', params: ['boom'] })
    assert.equal(await xapi.call('VM.get_name_label', vm.$ref), 'guest')

    pool.sim.faults.failNextCall('export_raw_vdi', 'VDI_IO_ERROR', ['Device I/O errors'])
    await assert.rejects(downloadExport(xapi, { format: 'vhd', vdi: vdi.ref }, join(tmp, 'x.vhd')))
    const failed = pool.sim.all('task').filter(task => task.status === 'failure')
    assert.ok(failed.some(task => (task.error_info as string[])[0] === 'VDI_IO_ERROR'))

    pool.sim.faults.failNextCall('VM.get_name_label', 'INTERNAL_ERROR')
    pool.sim.faults.reset()
    assert.equal(await xapi.call('VM.get_name_label', vm.$ref), 'guest')
  })

  it('loses the session: the next call answers SESSION_INVALID and the client logs in again', async () => {
    const oldSession = xapi.sessionId
    pool.sim.clearCalls()
    pool.sim.faults.loseSession()
    assert.equal(await xapi.call('VM.get_name_label', pool.sim.findVm('guest').$ref), 'guest')
    assert.ok(pool.sim.calls.some(call => call.error === 'SESSION_INVALID'))
    assert.ok(pool.sim.calls.some(call => call.method === 'session.login_with_password' && call.error === undefined))
    assert.notEqual(xapi.sessionId, oldSession)

    const response = await fetch(`${pool.url}/jsonrpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'VM.get_all', params: [oldSession] }),
    })
    const answer = (await response.json()) as { error: { message: string; data: string[] } }
    assert.deepEqual(answer.error, { code: 1, message: 'SESSION_INVALID', data: [oldSession] })
  })

  it('destroys a VDI behind the client', async () => {
    const path = pool.sim.vdiPath(vdi.uuid)
    pool.sim.faults.destroyVdiBehindClient(vdi.uuid)
    await xapi.barrier()
    assert.equal(xapi.getObjectByUuid(vdi.uuid, undefined), undefined)
    await assert.rejects(xapi.call('VDI.get_record', vdi.ref), { code: 'HANDLE_INVALID', params: ['VDI', vdi.ref] })
    assert.deepEqual(pool.sim.vdisOf(pool.sim.findVm('guest').uuid), [])
    await assert.rejects(downloadExport(xapi, { format: 'vhd', vdi: vdi.ref }, join(tmp, 'gone.vhd')))
    assert.equal(existsSync(path), false)
  })

  it('fails an import that does not fit the VDI on its task', async () => {
    const srRef = await xapi.call<string>('SR.get_by_uuid', pool.sim.defaultSr())
    const small = await xapi.call<string>('VDI.create', vdiCreateArgs({ name_label: 'small', SR: srRef, virtual_size: MiB }))
    const rawPath = join(tmp, 'big.raw')
    await writeFile(rawPath, randomBytes(2 * MiB))
    await assert.rejects(uploadImport(xapi, { format: 'raw', vdi: small }, rawPath), { code: 'VDI_IO_ERROR' })
  })
})
