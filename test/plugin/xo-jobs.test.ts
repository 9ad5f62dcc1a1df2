import assert from 'node:assert/strict'

import { parseConfiguration } from '../../src/plugin/configuration.js'
import type { Job } from '../../src/plugin/configuration.js'
import { JOB_TYPE, XoJobs } from '../../src/plugin/xo-jobs.js'
import { FakeScheduling } from './fake-xo.js'

function jobs(...configured: object[]): readonly Job[] {
  return parseConfiguration({ jobs: configured }).jobs
}

const base = { vms: ['vm-a'], remote: 'r1' }

describe('XoJobs', () => {
  it('creates one XO job per configured job and a schedule for the scheduled ones', async () => {
    const xo = new FakeScheduling()
    const sync = new XoJobs(xo)
    await sync.sync(jobs({ ...base, id: 'a', name: 'A', schedule: { cron: '0 * * * *', timezone: 'Europe/Paris' }, enabled: true }, { ...base, id: 'b', name: 'B' }))
    assert.deepEqual([...xo.jobs.values()].map(job => [job.type, job.continuousDeltaJobId, job.name]), [
      [JOB_TYPE, 'a', 'A'],
      [JOB_TYPE, 'b', 'B'],
    ])
    const schedules = [...xo.schedules.values()]
    assert.equal(schedules.length, 1)
    assert.deepEqual(
      schedules.map(({ cron, timezone, enabled, jobId }) => ({ cron, timezone, enabled, jobId })),
      [{ cron: '0 * * * *', timezone: 'Europe/Paris', enabled: true, jobId: sync.link('a')?.xoJobId }]
    )
    assert.equal(sync.link('a')?.scheduleId, schedules[0]?.id)
    assert.equal(sync.link('b')?.scheduleId, undefined)
  })

  it('follows edits: rename, new cron, disabled, schedule removed, job removed; keeps what did not change', async () => {
    const xo = new FakeScheduling()
    const sync = new XoJobs(xo)
    await sync.sync(jobs({ ...base, id: 'a', name: 'A', schedule: { cron: '0 * * * *' } }, { ...base, id: 'b', name: 'B', schedule: { cron: '5 * * * *' } }))
    const xoJobA = sync.link('a')?.xoJobId
    const scheduleB = sync.link('b')?.scheduleId

    await sync.sync(jobs({ ...base, id: 'a', name: 'A2', schedule: { cron: '*/5 * * * *' }, enabled: false }, { ...base, id: 'b', name: 'B', schedule: { cron: '5 * * * *' } }))
    assert.equal(sync.link('a')?.xoJobId, xoJobA)
    assert.equal(xo.jobs.get(xoJobA ?? '')?.name, 'A2')
    const scheduleA = xo.schedules.get(sync.link('a')?.scheduleId ?? '')
    assert.deepEqual([scheduleA?.cron, scheduleA?.enabled], ['*/5 * * * *', false])
    assert.equal(sync.link('b')?.scheduleId, scheduleB, 'an unchanged schedule is kept')
    assert.equal(xo.schedules.size, 2)

    await sync.sync(jobs({ ...base, id: 'b', name: 'B' }))
    assert.deepEqual([...xo.jobs.values()].map(job => job.continuousDeltaJobId), ['b'])
    assert.equal(xo.schedules.size, 0)
  })

  it("a job id and name that read as JSON (123, 2024) come back from XO's job store as written: one XO job, kept with its schedule", async () => {
    const xo = new FakeScheduling()
    const sync = new XoJobs(xo)
    const configured = jobs({ ...base, id: '123', name: '2024', schedule: { cron: '0 * * * *' } })
    await sync.sync(configured)
    const first = sync.link('123')
    await sync.sync(configured)
    assert.deepEqual(sync.link('123'), first)
    assert.deepEqual([...xo.jobs.values()].map(job => [job.continuousDeltaJobId, job.name]), [['123', '2024']])
    assert.equal(xo.schedules.size, 1)
  })

  it('removes XO jobs of its type that no configured job claims, and leaves other types alone', async () => {
    const xo = new FakeScheduling()
    await xo.createJob({ type: JOB_TYPE, name: 'stray', continuousDeltaJobId: 'gone' })
    await xo.createJob({ type: 'backup', name: 'other engine', key: 'x' })
    // an XO job of an earlier version, keyed: its runs were dropped from XO's backup logs
    await xo.createJob({ type: JOB_TYPE, name: 'A', key: 'a' })
    const sync = new XoJobs(xo)
    await sync.sync(jobs({ ...base, id: 'a', name: 'A' }))
    assert.deepEqual([...xo.jobs.values()].map(job => [job.type, job.key ?? job.continuousDeltaJobId]).sort(), [
      ['backup', 'x'],
      [JOB_TYPE, 'a'],
    ])
    assert.ok([...xo.jobs.values()].every(job => job.type !== JOB_TYPE || job.key === undefined), 'no keyed job of ours left')
  })

  it('clear removes every XO job and schedule of the plugin', async () => {
    const xo = new FakeScheduling()
    const sync = new XoJobs(xo)
    await sync.sync(jobs({ ...base, id: 'a', name: 'A', schedule: { cron: '0 * * * *' } }))
    await sync.clear()
    assert.equal(xo.jobs.size, 0)
    assert.equal(xo.schedules.size, 0)
    assert.equal(sync.link('a'), undefined)
  })
})
