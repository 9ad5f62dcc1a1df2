/**
 * The settings form tells the truth (issue 12, item 4), through the host double and xo-lib as XO's
 * web UI saves it (`plugin.configure` with what the form holds; the UI does not fill defaults in
 * array items, ignores `readOnly`, renders descriptions as Markdown/HTML and shows xo-server's
 * validation errors raw).
 */
import assert from 'node:assert/strict'

import { startHostDouble } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'

const PLUGIN = 'continuous-delta'
const JOB_TYPE = 'continuousDeltaBackup'

type Json = Record<string, unknown>

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** every `description` of a schema, with the path of the property it describes */
function descriptions(schema: unknown, path = ''): { path: string; text: string }[] {
  if (!isObject(schema)) return []
  const found: { path: string; text: string }[] = typeof schema['description'] === 'string' ? [{ path, text: schema['description'] }] : []
  if (isObject(schema['properties'])) {
    for (const [name, property] of Object.entries(schema['properties'])) found.push(...descriptions(property, `${path}/${name}`))
  }
  if (isObject(schema['items'])) found.push(...descriptions(schema['items'], `${path}[]`))
  return found
}

/** what a Markdown/HTML renderer drops: a tag-like `<word…>` outside a code span */
function tagsOutsideCode(text: string): string[] {
  return text.split('`').filter((_, index) => index % 2 === 0).flatMap(part => part.match(/<\/?[A-Za-z][^>]*>/g) ?? [])
}

async function rejection(promise: Promise<unknown>): Promise<Error & { data?: unknown }> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof Error, String(error))
    return error
  }
  assert.fail('expected a rejection')
}

describe('settings form (XO web UI)', function () {
  let host: HostDouble
  let admin: XoClient
  let remote: string

  before(async function () {
    host = await startHostDouble({ remotes: [{ name: 'nas', url: 'file:///tmp/settings-form-remote-unused' }] })
    remote = host.remoteIds[0]!
    admin = await host.signIn()
  })

  after(async function () {
    await host?.close()
  })

  /** the plugin as XO's web UI reads it (`plugin.get` lists every plugin) */
  async function plugin(): Promise<{ configuration?: Json; configurationSchema: Json }> {
    const plugins = await admin.call<{ id: string; configuration?: Json; configurationSchema: Json }[]>('plugin.get')
    const found = plugins.find(plugin => plugin.id === PLUGIN)
    assert.ok(found)
    return found
  }

  async function stored(): Promise<Json> {
    return (await plugin()).configuration ?? {}
  }

  async function storedJobs(): Promise<Json[]> {
    const jobs = (await stored())['jobs']
    return Array.isArray(jobs) ? jobs.filter(isObject) : []
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
    for (let i = 0; i < 400; i++) {
      const value = await probe()
      if (value !== undefined) return value
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    throw new Error(`timed out waiting for ${what}`)
  }

  /** saves the form: the stored settings with these jobs, as the UI sends them */
  async function save(jobs: Json[]): Promise<void> {
    await admin.call('plugin.configure', { id: PLUGIN, configuration: { ...(await stored()), jobs } })
  }

  it('a new job whose Enabled toggle was left as shown (off) is saved off: its schedule does not fire', async function () {
    // the UI sends no `enabled` for a toggle left untouched; it showed OFF
    await save([{ name: 'Seeded', vms: ['vm-uuid-1'], remote, schedule: { cron: '0 2 * * *' } }])
    const [job] = await until('the job id written back', async () => {
      const jobs = await storedJobs()
      return typeof jobs[0]?.['id'] === 'string' ? jobs : undefined
    })
    assert.notEqual(job?.['enabled'], true, 'saved as the UI showed it')
    const [xoJob] = await host.app.getAllJobs(JOB_TYPE)
    assert.ok(xoJob)
    const schedules = (await host.app.getAllSchedules()).filter(schedule => schedule.jobId === xoJob.id)
    assert.deepEqual(schedules.map(schedule => schedule.enabled), [false])
    const form = (await plugin()).configurationSchema
    const jobForm = JSON.stringify(((form['properties'] as Json)['jobs'] as Json)['items'])
    assert.ok(!jobForm.includes('"default"'), 'no field of a job has a default the UI would not show')
  })

  it('refuses a changed Identifier, naming the job, and keeps the job, its id and its XO job', async function () {
    const [job] = await storedJobs()
    assert.ok(job && typeof job['id'] === 'string')
    const before = await host.app.getAllJobs(JOB_TYPE)
    const error = await rejection(save([{ ...job, id: 'my-new-id' }]))
    assert.match(error.message, /job 1 "Seeded"/)
    assert.match(error.message, /Identifier/)
    assert.match(error.message, /cannot be changed/)
    assert.ok(error.message.includes(job['id']), 'says what the identifier was')
    assert.deepEqual((await storedJobs()).map(stored => stored['id']), [job['id']])
    assert.deepEqual(await host.app.getAllJobs(JOB_TYPE), before)
    // a new job with an identifier typed in is refused too; the same job saved unchanged is fine
    await rejection(save([job, { name: 'Typed id', vms: ['vm-uuid-2'], remote, id: 'typed' }]))
    await save([{ ...job, retention: 4 }])
    assert.equal((await storedJobs())[0]?.['retention'], 4)
  })

  it('descriptions render as written: no <placeholder> that Markdown/HTML would swallow', async function () {
    const form = (await plugin()).configurationSchema
    const all = descriptions(form)
    assert.ok(all.some(({ path }) => path.endsWith('/schedule/cron')), 'the cron field is described')
    for (const { path, text } of all) assert.deepEqual(tagsOutsideCode(text), [], `${path}: ${text}`)
  })

  it('an error names the job and the field in words, not a JSON path or a regex', async function () {
    const [job] = await storedJobs()
    assert.ok(job)
    const cases: { jobs: Json[]; says: RegExp[] }[] = [
      { jobs: [job, { name: 'a/b', vms: ['vm-uuid-2'], remote }], says: [/job 2 "a\/b", Name may only hold letters/] },
      { jobs: [{ ...job, retention: 0 }], says: [/job 1 "Seeded", Retention must be at least 1/] },
      { jobs: [{ ...job, schedule: { cron: '0 25 * * *' } }], says: [/job 1 "Seeded", Schedule › Cron pattern/] },
      { jobs: [{ ...job, vms: [] }], says: [/job 1 "Seeded", VMs must list at least 1/] },
    ]
    for (const { jobs, says } of cases) {
      const error = await rejection(save(jobs))
      const shown = `${error.message} ${JSON.stringify(error.data ?? null)}`
      for (const words of says) assert.match(error.message, words)
      assert.ok(!shown.includes('/jobs/'), `no JSON path: ${shown}`)
      assert.ok(!shown.includes('\\p{L}') && !shown.includes('^['), `no regex: ${shown}`)
    }
    assert.deepEqual((await storedJobs()).map(stored => stored['retention']), [4], 'nothing saved')
  })

  it('offers only settings that have an effect; a configuration from before, with the retired setting, still loads', async function () {
    const form = (await plugin()).configurationSchema
    assert.deepEqual(Object.keys(form['properties'] as Json).sort(), ['concurrency', 'defaultRetention', 'jobs', 'transferTimeoutSeconds', 'useVhdDirectory'])
    await admin.call('plugin.configure', { id: PLUGIN, configuration: { ...(await stored()), mergeBlockConcurrency: 4 } })
    await until('the retired setting dropped', async () => ('mergeBlockConcurrency' in (await stored()) ? undefined : true))
    assert.equal((await storedJobs()).length, 1)
  })
})
