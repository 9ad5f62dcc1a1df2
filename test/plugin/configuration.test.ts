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
    assert.deepEqual(parsed.settings, { defaultRetention: 7, concurrency: 2, mergeBlockConcurrency: 2, useVhdDirectory: false })
    const [first] = parsed.jobs
    assert.equal(first?.enabled, true)
    assert.deepEqual(first?.schedule, { cron: '0 * * * *', timezone: 'UTC' })
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
    invalid({ jobs: [{ ...job, retention: 0 }] }, 'jobs[0].retention', 'at least 1')
    invalid({ jobs: [job, { ...job, name: 'other', retention: -3 }] }, 'jobs[1].retention')
    invalid({ jobs: [{ ...job, retention: 2.5 }] }, 'jobs[0].retention', 'integer')
    invalid({ jobs: [{ ...job, retention: MAX_RETENTION + 1 }] }, 'jobs[0].retention', `at most ${MAX_RETENTION}`)
    invalid({ defaultRetention: 0 }, 'defaultRetention')
  })

  it('refuses a malformed cron pattern and an unknown timezone', () => {
    invalid({ jobs: [{ ...job, schedule: { cron: '61 * * * *' } }] }, 'jobs[0].schedule.cron', '61 * * * *')
    invalid({ jobs: [{ ...job, schedule: { cron: 'every day' } }] }, 'jobs[0].schedule.cron')
    invalid({ jobs: [{ ...job, schedule: { cron: '0 0 * *' } }] }, 'jobs[0].schedule.cron')
    invalid({ jobs: [{ ...job, schedule: { cron: '0 0 * * *', timezone: 'Mars/Olympus' } }] }, 'jobs[0].schedule.timezone', 'Mars/Olympus')
    assert.equal(parseConfiguration({ jobs: [{ ...job, schedule: { cron: '30 2 * * sun', timezone: 'Europe/Paris' } }] }).jobs.length, 1)
  })

  it('refuses names with odd characters and accepts accented ones', () => {
    for (const name of ['a/b', '../x', '<script>', 'tab\there', '', ' leading', 'semi;colon']) {
      invalid({ jobs: [{ ...job, name }] }, 'jobs[0].name')
    }
    assert.equal(parseConfiguration({ jobs: [{ ...job, name: 'Sauvegarde été (prod) #2' }] }).jobs[0]?.name, 'Sauvegarde été (prod) #2')
  })

  it('refuses two jobs with the same id or the same name', () => {
    invalid({ jobs: [{ ...job, id: 'x' }, { ...job, name: 'other', id: 'x' }] }, 'jobs[1].id', 'jobs[0]')
    invalid({ jobs: [job, { ...job, name: 'NIGHTLY' }] }, 'jobs[1].name')
  })

  it('refuses unknown properties, a job without VMs or remote, an unsafe id', () => {
    invalid({ jobs: [{ ...job, vm: 'x' }] }, 'unknown property "vm"')
    invalid({ jobs: [{ ...job, vms: [] }] }, 'jobs[0].vms')
    invalid({ jobs: [{ name: 'x', vms: ['a'] }] }, 'missing property "remote"')
    invalid({ jobs: [{ ...job, id: '../etc' }] }, 'jobs[0].id')
    invalid({ jobs: [{ ...job, vms: ['a', 'a'] }] }, 'jobs[0].vms', 'twice')
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
