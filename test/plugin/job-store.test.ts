import assert from 'node:assert/strict'

import { BackupError } from '../../src/errors.js'
import { parseConfiguration } from '../../src/plugin/configuration.js'
import type { Configuration, ParsedConfiguration } from '../../src/plugin/configuration.js'
import { JobStore } from '../../src/plugin/job-store.js'
import type { ReferenceHost } from '../../src/plugin/references.js'
import type { XoObject, XoRemote } from '../../src/plugin/xo.js'

/** stands for xo-server: `write` validates and applies the configuration, like configurePlugin */
class FakeHost {
  parsed: ParsedConfiguration = parseConfiguration({})
  writes: Configuration[] = []
  readonly vms = new Set(['vm-a', 'vm-b'])
  readonly remotes = new Map<string, XoRemote>([
    ['r1', { id: 'r1', name: 'nas', enabled: true }],
    ['r-off', { id: 'r-off', name: 'old nas', enabled: false }],
  ])

  readonly references: ReferenceHost = {
    getObject: (id: string): XoObject => {
      if (!this.vms.has(id)) throw new Error(`no such object ${id}`)
      return { id, type: 'VM' }
    },
    getRemote: async (id: string): Promise<XoRemote> => {
      const remote = this.remotes.get(id)
      if (remote === undefined) throw new Error(`no such remote ${id}`)
      return remote
    },
  }

  current(): ParsedConfiguration {
    return this.parsed
  }

  async write(configuration: Configuration): Promise<void> {
    await new Promise(resolve => setImmediate(resolve))
    this.parsed = parseConfiguration(configuration)
    this.writes.push(configuration)
  }
}

async function rejectsWith(promise: Promise<unknown>, code: string, fragment: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof BackupError, String(error))
    assert.equal(error.code, code)
    assert.ok(error.message.includes(fragment), `"${error.message}" should say "${fragment}"`)
    return true
  })
}

describe('JobStore', () => {
  let host: FakeHost
  let store: JobStore
  let ids: number

  beforeEach(() => {
    host = new FakeHost()
    ids = 0
    store = new JobStore(host, () => `id-${++ids}`)
  })

  it('creates a job in the configuration, with defaults, and returns its id', async () => {
    const id = await store.create({ name: 'Nightly', vms: ['vm-a'], remote: 'r1', schedule: { cron: '0 3 * * *' } })
    assert.equal(id, 'id-1')
    assert.equal(host.writes.length, 1)
    assert.deepEqual(host.writes[0]?.jobs, [
      { id: 'id-1', name: 'Nightly', vms: ['vm-a'], remote: 'r1', schedule: { cron: '0 3 * * *' } },
    ])
    assert.deepEqual(store.get(id).vms, ['vm-a'])
  })

  it('refuses unknown VMs, unknown and disabled remotes, and writes nothing', async () => {
    await rejectsWith(store.create({ name: 'A', vms: ['vm-a', 'ghost'], remote: 'r1' }), 'VM_NOT_FOUND', 'ghost')
    await rejectsWith(store.create({ name: 'A', vms: ['vm-a'], remote: 'nowhere' }), 'REMOTE_NOT_FOUND', 'nowhere')
    await rejectsWith(store.create({ name: 'A', vms: ['vm-a'], remote: 'r-off' }), 'REMOTE_DISABLED', 'r-off')
    await rejectsWith(store.create({ name: 'A', vms: ['vm-a'], remote: 'r1', retention: 0 }), 'INVALID_PARAMETER', 'retention')
    await rejectsWith(store.create({ name: 'A', vms: ['vm-a'], remote: 'r1', schedule: { cron: '* * *' } }), 'INVALID_PARAMETER', 'cron')
    await rejectsWith(store.create({ name: 'A/B', vms: ['vm-a'], remote: 'r1' }), 'INVALID_PARAMETER', 'name')
    assert.deepEqual(host.writes, [])
  })

  it('refuses a second job with the same name', async () => {
    await store.create({ name: 'Nightly', vms: ['vm-a'], remote: 'r1' })
    await rejectsWith(store.create({ name: 'nightly', vms: ['vm-b'], remote: 'r1' }), 'INVALID_PARAMETER', 'name')
    assert.equal(host.writes.length, 1)
  })

  it('edits only the given fields and checks the new references', async () => {
    const id = await store.create({ name: 'Nightly', vms: ['vm-a'], remote: 'r1', retention: 3 })
    const edited = await store.edit({ id, vms: ['vm-a', 'vm-b'], enabled: false })
    assert.deepEqual(edited, { id, name: 'Nightly', vms: ['vm-a', 'vm-b'], remote: 'r1', retention: 3, enabled: false })
    await rejectsWith(store.edit({ id, remote: 'r-off' }), 'REMOTE_DISABLED', 'r-off')
    await rejectsWith(store.edit({ id: 'nope', name: 'x' }), 'JOB_NOT_FOUND', 'nope')
    assert.equal(store.get(id).remote, 'r1')
  })

  it('still edits a job whose VM has left XO, when the VMs are not changed', async () => {
    const id = await store.create({ name: 'Nightly', vms: ['vm-a'], remote: 'r1' })
    host.vms.delete('vm-a')
    assert.equal((await store.edit({ id, retention: 5 })).retention, 5)
  })

  it('deletes a job', async () => {
    const a = await store.create({ name: 'A', vms: ['vm-a'], remote: 'r1' })
    const b = await store.create({ name: 'B', vms: ['vm-b'], remote: 'r1' })
    await store.delete(a)
    assert.deepEqual(store.list().map(job => job.id), [b])
    await rejectsWith(store.delete(a), 'JOB_NOT_FOUND', a)
  })

  it('applies concurrent changes one after the other, losing none', async () => {
    const created = await Promise.all(['A', 'B', 'C', 'D'].map(name => store.create({ name, vms: ['vm-a'], remote: 'r1' })))
    assert.deepEqual(store.list().map(job => job.id).sort(), [...created].sort())
  })
})
