import assert from 'node:assert/strict'
import { once } from 'node:events'
import { join } from 'node:path'
import sinon from 'sinon'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import type { ExecutorParams, RunLog } from './jobs.js'
import type { XoApp } from './app.js'
import type { TaskLog } from './tasks.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

type LogsById = Record<string, RunLog & { tasks?: TaskLog[] }>

describe('host double: jobs and schedules', function () {
  let host: HostDouble
  let admin: XoClient

  beforeEach(async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL })
    admin = await host.signIn()
  })

  afterEach(async function () {
    sinon.restore()
    await host.close()
  })

  it('calls the executor with the documented params, logs the run and emits job:terminated', async function () {
    const app = host.app
    let seen: ExecutorParams<XoApp> | undefined
    app.registerJobExecutor('probe', async params => {
      seen = params
      const task = app.tasks.create({ name: 'probe run', type: 'probe' })
      await params.jobUpdateFct(task.id)
      return task.run(() => ({ answer: 42 }))
    })
    assert.throws(() => app.registerJobExecutor('probe', () => undefined), /already a job executor/)

    const job = await app.createJob({ type: 'probe', name: 'probe job', userId: 'admin-0000' })
    const terminated = once(app, 'job:terminated')
    await app.runJobSequence([job.id], undefined, { some: 'data' })
    const [runJobId, info] = (await terminated) as [string, { status: unknown; type: string }]

    assert.ok(seen !== undefined)
    assert.deepEqual(Object.keys(seen).sort(), ['app', 'cancelToken', 'connection', 'data', 'job', 'jobData', 'jobUpdateFct', 'logger', 'runJobId', 'schedule'])
    assert.equal(seen.app, app)
    assert.equal(seen.runJobId, runJobId)
    assert.deepEqual(seen.data, { some: 'data' })
    assert.equal(seen.job.id, job.id)
    assert.equal(seen.job.runId, runJobId)
    assert.equal(seen.schedule, undefined)
    assert.equal(seen.cancelToken.requested, false)
    assert.equal(seen.connection.get('user_id'), 'admin-0000')
    assert.equal(seen.connection.closed, true)
    assert.deepEqual(seen.jobData, { jobId: job.id, jobName: 'probe job', runJobId, scheduleId: undefined, type: 'probe', userId: 'admin-0000' })
    assert.deepEqual(info, { status: { answer: 42 }, type: 'probe' })

    const logs = await admin.call<LogsById>('backupNg.getLogs')
    const run = logs[runJobId]!
    assert.equal(run.jobId, job.id)
    assert.equal(run.status, 'success')
    assert.deepEqual(run.result, { answer: 42 })
    assert.ok(run.end! >= run.start)
    assert.deepEqual(run.tasks?.map(task => [task.properties['name'], task.status, task.result]), [['probe run', 'success', { answer: 42 }]])
    // the job no longer carries a run id once it ended
    assert.equal((await app.getJob(job.id)).runId, undefined)
  })

  it('logs a failed run with its error, and rejects runJobSequence', async function () {
    const job = await host.app.createJob({ type: 'trivial', name: 'failing' })
    const terminated = once(host.app, 'job:terminated')
    await assert.rejects(host.app.runJobSequence([job.id], undefined, { fail: true }), /asked to fail/)
    const [runJobId, info] = (await terminated) as [string, { status?: unknown; type: string }]
    assert.deepEqual(info, { type: 'trivial' })
    const run = (await admin.call<LogsById>('backupNg.getLogs', { jobId: job.id }))[runJobId]!
    assert.equal(run.status, 'failure')
    assert.equal((run.result as { message: string }).message, 'asked to fail')
    assert.equal(run.tasks?.[0]?.status, 'failure')
  })

  it('fails a run of a type without executor, and an unknown job id', async function () {
    const job = await host.app.createJob({ type: 'nobody' })
    await assert.rejects(host.app.runJobSequence([job.id]), /no executor for type nobody/)
    await assert.rejects(host.app.runJobSequence(['missing']), (error: { code: number }) => error.code === 1)
  })

  it('stores jobs: create, update (merge), list by type, remove (with its schedules)', async function () {
    const app = host.app
    const a = await app.createJob({ type: 'trivial', name: 'a', settings: { x: 1 } })
    const b = await app.createJob({ type: 'other', name: 'b' })
    await app.updateJob({ id: a.id, name: 'a2' })
    assert.deepEqual(await app.getJob(a.id), { ...a, name: 'a2' })
    assert.deepEqual((await app.getAllJobs('trivial')).map(job => job.id), [a.id])
    assert.deepEqual((await app.getAllJobs()).map(job => job.id), [a.id, b.id])
    const schedule = await app.createSchedule({ cron: '0 0 * * *', jobId: a.id, name: 'nightly', timezone: 'Europe/Paris', enabled: false })
    await app.updateSchedule({ id: schedule.id, cron: '0 1 * * *', name: null })
    assert.deepEqual(await app.getSchedule(schedule.id), { id: schedule.id, cron: '0 1 * * *', enabled: false, jobId: a.id, timezone: 'Europe/Paris' })
    await app.removeJob(a.id)
    assert.deepEqual(await app.getAllSchedules(), [])
    await assert.rejects(app.getJob(a.id), (error: { code: number }) => error.code === 1)
  })

  it('fires an enabled schedule on its cron (the disabled one stays quiet), and stops timers on close', async function () {
    const app = host.app
    const job = await app.createJob({ type: 'trivial', name: 'scheduled' })
    // 3 s before a minute boundary: the `* * * * *` cron fires 3 s later
    const clock = sinon.useFakeTimers({ now: Date.UTC(2030, 0, 1, 0, 0, 57), toFake: ['Date', 'setTimeout', 'clearTimeout'] })
    const schedule = await app.createSchedule({ cron: '* * * * *', timezone: 'UTC', jobId: job.id, name: 'every minute', enabled: true, userId: 'admin-0000' })
    await app.createSchedule({ cron: '* * * * *', jobId: job.id, name: 'off', enabled: false })
    assert.equal(app.activeScheduleCount, 1)
    const terminated = once(app, 'job:terminated')
    await clock.tickAsync(2000)
    assert.equal(app.getLogs('jobs').length, 0, 'nothing ran before the minute')
    await clock.tickAsync(1500)
    clock.restore()
    const [runJobId] = (await terminated) as [string]

    const run = (await admin.call<LogsById>('backupNg.getLogs'))[runJobId]!
    assert.equal(run.scheduleId, schedule.id)
    assert.equal(run.status, 'success')
    assert.deepEqual(run.result, { runs: 1 })
    const runs = await app.getStore('trivial').get<{ scheduleId: string; runJobId: string }[]>('runs')
    assert.deepEqual(runs?.map(_ => [_.scheduleId, _.runJobId]), [[schedule.id, runJobId]])

    await app.updateSchedule({ id: schedule.id, enabled: false })
    assert.equal(app.activeScheduleCount, 0)
    await app.updateSchedule({ id: schedule.id, enabled: true })
    assert.equal(app.activeScheduleCount, 1)
    await host.close()
    assert.equal(app.activeScheduleCount, 0)
    host = await startHostDouble({ pluginDir: TRIVIAL })
  })

  it('rejects an invalid cron pattern', async function () {
    await assert.rejects(host.app.createSchedule({ cron: 'every day', jobId: 'x' }), SyntaxError)
  })
})
