import assert from 'node:assert/strict'

import { BackupError } from '../../src/errors.js'
import { parseConfiguration, toJobSpec } from '../../src/plugin/configuration.js'
import { formJobId } from '../../src/plugin/plugin.js'
import { MAX_RETENTION } from '../../src/plugin/schema.js'

const job = { name: 'Nightly', vms: ['vm-a'], remote: 'remote-1' }

function invalid(configuration: unknown, ...fragments: string[]): void {
  assert.throws(
    () => parseConfiguration(configuration),
    (error: unknown) => {
      assert.ok(error instanceof BackupError, String(error))
      assert.equal(error.code, 'INVALID_PARAMETER')
      for (const fragment of fragments) assert.ok(error.message.includes(fragment), `"${error.message}" should say "${fragment}"`)
      return true
    }
  )
}

describe('plugin configuration', () => {
  it('fills the defaults in, at the top and in jobs', () => {
    const parsed = parseConfiguration({ jobs: [{ ...job, schedule: { cron: '0 * * * *' } }] }, () => 'fixed-id')
    assert.deepEqual(parsed.settings, { defaultRetention: 7, concurrency: 2, useVhdDirectory: false, transferTimeoutSeconds: 600 })
    const [first] = parsed.jobs
    assert.equal(first?.enabled, undefined, 'a job is off unless turned on')
    assert.deepEqual(first?.schedule, { cron: '0 * * * *' })
    assert.equal(first?.id, 'fixed-id')
    assert.equal(parsed.idsAssigned, true)
    assert.deepEqual(parsed.configuration.jobs, parsed.jobs)
  })

  it('accepts the empty configuration xo-server tries first', () => {
    const parsed = parseConfiguration({})
    assert.deepEqual(parsed.jobs, [])
    assert.equal(parsed.idsAssigned, false)
  })

  it('keeps the ids it is given and does not ask for a write-back', () => {
    const parsed = parseConfiguration({ jobs: [{ ...job, id: 'abc-1' }] })
    assert.equal(parsed.jobs[0]?.id, 'abc-1')
    assert.equal(parsed.idsAssigned, false)
  })

  it('gives a job added in the form the same id each time it is read', () => {
    const a = parseConfiguration({ jobs: [job] }, formJobId)
    const b = parseConfiguration({ jobs: [{ ...job, name: 'NIGHTLY' }] }, formJobId)
    assert.equal(a.jobs[0]?.id, b.jobs[0]?.id)
    assert.notEqual(a.jobs[0]?.id, parseConfiguration({ jobs: [{ ...job, name: 'Weekly' }] }, formJobId).jobs[0]?.id)
  })

  it('refuses retention 0, negative, fractional or absurd, naming the job', () => {
    invalid({ jobs: [{ ...job, retention: 0 }] }, 'job 1 "Nightly", Retention', 'at least 1')
    invalid({ jobs: [job, { ...job, name: 'other', retention: -3 }] }, 'job 2 "other", Retention')
    invalid({ jobs: [{ ...job, retention: 2.5 }] }, 'job 1 "Nightly", Retention', 'whole number')
    invalid({ jobs: [{ ...job, retention: MAX_RETENTION + 1 }] }, 'job 1 "Nightly", Retention', `at most ${MAX_RETENTION}`)
    invalid({ defaultRetention: 0 }, 'Default retention')
  })

  it('refuses a malformed cron pattern and an unknown timezone', () => {
    invalid({ jobs: [{ ...job, schedule: { cron: '61 * * * *' } }] }, 'job 1 "Nightly", Schedule › Cron pattern', '61 * * * *')
    invalid({ jobs: [{ ...job, schedule: { cron: 'every day' } }] }, 'job 1 "Nightly", Schedule › Cron pattern')
    invalid({ jobs: [{ ...job, schedule: { cron: '0 0 * *' } }] }, 'job 1 "Nightly", Schedule › Cron pattern')
    invalid({ jobs: [{ ...job, schedule: { cron: '0 0 * * *', timezone: 'Mars/Olympus' } }] }, 'job 1 "Nightly", Schedule › Timezone', 'Mars/Olympus')
    assert.equal(parseConfiguration({ jobs: [{ ...job, schedule: { cron: '30 2 * * sun', timezone: 'Europe/Paris' } }] }).jobs.length, 1)
  })

  it('refuses names with odd characters and accepts accented ones', () => {
    for (const name of ['a/b', '../x', '<script>', 'tab\there', '', ' leading', 'semi;colon']) {
      invalid({ jobs: [{ ...job, name }] }, 'job 1', 'Name')
    }
    assert.equal(parseConfiguration({ jobs: [{ ...job, name: 'Sauvegarde été (prod) #2' }] }).jobs[0]?.name, 'Sauvegarde été (prod) #2')
  })

  it('refuses two jobs with the same id or the same name', () => {
    invalid({ jobs: [{ ...job, id: 'x' }, { ...job, name: 'other', id: 'x' }] }, 'job 2 "other", Identifier', 'job 1 "Nightly"')
    invalid({ jobs: [job, { ...job, name: 'NIGHTLY' }] }, 'job 2 "NIGHTLY", Name', 'name of job 1')
  })

  it('refuses unknown properties, a job without VMs or remote, an unsafe id', () => {
    invalid({ jobs: [{ ...job, vm: 'x' }] }, 'unknown field "vm"')
    invalid({ jobs: [{ ...job, vms: [] }] }, 'job 1 "Nightly", VMs')
    invalid({ jobs: [{ name: 'x', vms: ['a'] }] }, 'job 1 "x": Remote is missing')
    invalid({ jobs: [{ ...job, id: '../etc' }] }, 'job 1 "Nightly", Identifier')
    invalid({ jobs: [{ ...job, vms: ['a', 'a'] }] }, 'job 1 "Nightly", VMs', 'twice')
  })

  it('does not alter the configuration it is handed', () => {
    const input = { jobs: [{ ...job }] }
    parseConfiguration(input)
    assert.deepEqual(input, { jobs: [{ ...job }] })
  })

  it('turns a job into what the lifecycle runs, with the default retention', () => {
    const { jobs, settings } = parseConfiguration({ defaultRetention: 4, concurrency: 3, jobs: [{ ...job, id: 'j1' }, { ...job, id: 'j2', name: 'b', retention: 9 }] })
    const [first, second] = jobs
    assert.ok(first && second)
    assert.deepEqual(toJobSpec(first, settings, 'sched-1'), { id: 'j1', name: 'Nightly', vms: ['vm-a'], remoteId: 'remote-1', retention: 4, concurrency: 3, scheduleId: 'sched-1' })
    assert.equal(toJobSpec(second, settings).retention, 9)
  })
})
