import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import pluginFactory from '../../src/index.js'
import type { Engine } from '../../src/plugin/engine.js'
import type { JobEnvironment, JobRunResult, JobSpec } from '../../src/lifecycle/job.js'
import { ContinuousDeltaPlugin } from '../../src/plugin/plugin.js'
import { JOB_TYPE } from '../../src/plugin/xo-jobs.js'
import { FakeTask, taskTrees } from './fake-tasks.js'
import { FakeXo } from './fake-xo.js'

/** a lifecycle double: reports a VM and a disk, and can wait until its run is cancelled */
class FakeEngine implements Engine {
  readonly runs: JobSpec[] = []
  blockUntilAborted = false
  started: () => void = () => {}

  async runJob(job: JobSpec, env: JobEnvironment): Promise<JobRunResult> {
    this.runs.push(job)
    const start = Date.now()
    const vm = env.reporter.child(`VM ${job.vms[0] ?? ''}`)
    const disk = vm.child('disk system')
    disk.progress(50)
    vm.warning('forced a full: writing to nfs://backup:hunter2@nas/dir')
    if (this.blockUntilAborted) {
      this.started()
      await new Promise<void>((_resolve, reject) => {
        const abort = (): void => reject(env.signal?.reason)
        if (env.signal?.aborted === true) abort()
        env.signal?.addEventListener('abort', abort, { once: true })
      })
    }
    disk.end({ status: 'success' })
    vm.end({ status: 'success' })
    return {
      id: `run-${this.runs.length}`,
      jobId: job.id,
      status: 'success',
      start,
      end: Date.now(),
      vms: job.vms.map(vm => ({ vm, status: 'success', disks: [{ vdi: 'vdi-1', name: 'system', mode: 'full', size: 42, durationMs: 1 }], excluded: [], warnings: ['see smb://u:hunter2@h/s'] })),
    }
  }
  async listRestorePoints(): Promise<never[]> {
    return []
  }
  async verifyRemote(): Promise<{ ok: boolean; read: { blocks: number; bytes: number }; restorePoints: never[]; problems: never[] }> {
    return { ok: true, read: { blocks: 0, bytes: 0 }, restorePoints: [], problems: [] }
  }
  async restoreVm(): Promise<never> {
    throw new Error('not in this double')
  }
  async healthCheck(): Promise<never> {
    throw new Error('not in this double')
  }
}

function setUp(): { xo: FakeXo; engine: FakeEngine; plugin: ContinuousDeltaPlugin } {
  const xo = new FakeXo()
  xo.vms.add('vm-a')
  xo.remotes.set('r1', { id: 'r1', name: 'nas', enabled: true })
  const engine = new FakeEngine()
  const plugin = new ContinuousDeltaPlugin(xo, engine)
  xo.registerJobExecutor(JOB_TYPE, plugin.executeXoJob)
  xo.plugin = plugin
  return { xo, engine, plugin }
}

describe('plugin instance', () => {
  beforeEach(() => {
    FakeTask.events = []
  })

  it('is the default export: a factory carrying the configuration schema, registering its executor once', () => {
    const xo = new FakeXo()
    assert.equal(typeof pluginFactory, 'function')
    assert.equal(pluginFactory.configurationSchema.type, 'object')
    assert.ok('jobs' in (pluginFactory.configurationSchema['properties'] as object))
    const plugin = pluginFactory({ xo })
    assert.ok(plugin instanceof ContinuousDeltaPlugin)
    assert.deepEqual([...xo.executors.keys()], [JOB_TYPE])
  })

  it('load registers admin-only, described methods with XO params; unload removes them', async () => {
    const { xo, plugin } = setUp()
    await plugin.configure({})
    await plugin.load()
    const names = [...xo.methods.keys()].sort()
    assert.deepEqual(names, [
      'continuousDelta.createJob',
      'continuousDelta.deleteJob',
      'continuousDelta.deleteRestorePoint',
      'continuousDelta.editJob',
      'continuousDelta.forgetVm',
      'continuousDelta.getJobs',
      'continuousDelta.getRuns',
      'continuousDelta.healthCheck',
      'continuousDelta.listRestorePoints',
      'continuousDelta.restore',
      'continuousDelta.runJob',
      'continuousDelta.verify',
    ])
    for (const method of xo.methods.values()) {
      assert.equal(method.permission, 'admin')
      assert.ok(method.description.length > 10)
      assert.deepEqual(Object.keys(method).sort(), ['description', 'params', 'permission'])
    }
    const { params } = xo.methods.get('continuousDelta.createJob') ?? {}
    assert.equal(params?.['name']?.['optional'], undefined)
    assert.equal(params?.['vms']?.['type'], 'array')
    assert.equal(params?.['retention']?.['optional'], true)
    assert.equal(params?.['schedule']?.['optional'], true)
    assert.deepEqual(params?.['schedule']?.['properties'], {
      cron: { type: 'string', description: 'Five fields: `minute hour day-of-month month(0-11) day-of-week`, e.g. `0 2 * * *` every day at 02:00, `0 * * * *` every hour' },
      timezone: { type: 'string', description: 'IANA timezone the pattern is read in, e.g. `Europe/Paris`; `UTC` when left empty', optional: true },
    })
    // value rules are checked by the method itself, with a message naming the parameter
    await assert.rejects(xo.call('continuousDelta.createJob', { name: 'A', vms: ['vm-a'], remote: 'r1', retention: 0 }), /retention must be at least 1/)
    await plugin.unload()
    assert.equal(xo.methods.size, 0)
  })

  it('a job created through the API lands in the configuration and gets an XO job and schedule', async () => {
    const { xo, plugin } = setUp()
    await plugin.configure({})
    await plugin.load()
    const id = await xo.call('continuousDelta.createJob', { name: 'Nightly', vms: ['vm-a'], remote: 'r1', schedule: { cron: '0 2 * * *' } })
    assert.equal(typeof id, 'string')
    assert.deepEqual(xo.stored, {
      defaultRetention: 7,
      concurrency: 2,
      transferTimeoutSeconds: 600,
      useVhdDirectory: false,
      jobs: [{ id, name: 'Nightly', vms: ['vm-a'], remote: 'r1', schedule: { cron: '0 2 * * *' } }],
    })
    assert.deepEqual([...xo.jobs.values()].map(job => job.continuousDeltaJobId), [id])
    assert.deepEqual([...xo.schedules.values()].map(schedule => [schedule.cron, schedule.enabled]), [['0 2 * * *', false]])
    await assert.rejects(xo.call('continuousDelta.createJob', { name: 'x', vms: ['vm-a'], remote: 'r1', extra: 1 }), /unknown property "extra"/)
  })

  it('runs a job through XO (even disabled), with the configured retention, a task tree and a redacted result', async () => {
    const { xo, engine, plugin } = setUp()
    await plugin.configure({ defaultRetention: 4, jobs: [{ id: 'j1', name: 'Nightly', vms: ['vm-a'], remote: 'r1', enabled: false }] })
    await plugin.load()
    const result = await xo.call('continuousDelta.runJob', { id: 'j1' })
    assert.deepEqual(engine.runs.map(({ id, retention, remoteId }) => ({ id, retention, remoteId })), [{ id: 'j1', retention: 4, remoteId: 'r1' }])
    const text = JSON.stringify(result)
    assert.ok(text.includes('"status":"success"'))
    assert.ok(!text.includes('hunter2'), text)

    const [root] = taskTrees(FakeTask.events)
    assert.equal(root?.status, 'success')
    assert.deepEqual(root?.children.map(child => child.name), ['VM vm-a'])
    assert.deepEqual(root?.children[0]?.children.map(child => child.name), ['disk system'])

    const runs = await xo.call('continuousDelta.getRuns')
    const runsText = JSON.stringify(runs)
    assert.ok(runsText.includes('forced a full'))
    assert.ok(!runsText.includes('hunter2'), runsText)
  })

  it('editing the configuration changes what runs', async () => {
    const { xo, engine, plugin } = setUp()
    const job = { id: 'j1', name: 'Nightly', vms: ['vm-a'], remote: 'r1' }
    await plugin.configure({ jobs: [job] })
    await plugin.load()
    await plugin.configure({ jobs: [{ ...job, retention: 2 }] })
    await xo.call('continuousDelta.runJob', { id: 'j1' })
    assert.equal(engine.runs[0]?.retention, 2)
  })

  it('unload cancels a run in progress and waits for it; the executor then refuses to run', async () => {
    const { xo, engine, plugin } = setUp()
    await plugin.configure({ jobs: [{ id: 'j1', name: 'Nightly', vms: ['vm-a'], remote: 'r1', schedule: { cron: '0 * * * *' } }] })
    await plugin.load()
    engine.blockUntilAborted = true
    const started = new Promise<void>(resolve => {
      engine.started = resolve
    })
    const running = xo.call('continuousDelta.runJob', { id: 'j1' })
    running.catch(() => {})
    await started
    await plugin.unload()
    await assert.rejects(running, (error: unknown) => error instanceof Error && Reflect.get(error, 'code') === 'CANCELLED')
    assert.equal(xo.jobs.size, 0)
    assert.equal(xo.schedules.size, 0)
    assert.equal(xo.methods.size, 0)
    await assert.rejects(plugin.executeXoJob({ job: { id: 'x', type: JOB_TYPE, continuousDeltaJobId: 'j1' } }), /not loaded/)
    const [root] = taskTrees(FakeTask.events)
    assert.equal(root?.status, 'failure')
  })

  it('gives a job added in the form an id and writes it back once configure is over', async () => {
    const { xo, plugin } = setUp()
    await xo.configurePlugin('continuous-delta', { jobs: [{ name: 'From the form', vms: ['vm-a'], remote: 'r1' }] })
    await new Promise(resolve => setImmediate(resolve))
    await new Promise(resolve => setImmediate(resolve))
    const [job] = (await plugin.getJobs())
    assert.ok(job?.id.startsWith('job-'))
    assert.deepEqual(xo.stored, {
      defaultRetention: 7,
      concurrency: 2,
      transferTimeoutSeconds: 600,
      useVhdDirectory: false,
      jobs: [{ id: job?.id, name: 'From the form', vms: ['vm-a'], remote: 'r1' }],
    })
  })

  it('keeps the recent runs in its data dir across a restart', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'plugin-data-'))
    try {
      const job = { id: 'j1', name: 'Nightly', vms: ['vm-a'], remote: 'r1' }
      const first = new FakeXo()
      first.vms.add('vm-a')
      first.remotes.set('r1', { id: 'r1', name: 'nas', enabled: true })
      const before = new ContinuousDeltaPlugin(first, new FakeEngine(), async () => dataDir)
      first.registerJobExecutor(JOB_TYPE, before.executeXoJob)
      await before.configure({ jobs: [job] })
      await before.load()
      await before.runJob({ id: 'j1' })
      await before.unload()

      const after = new ContinuousDeltaPlugin(new FakeXo(), new FakeEngine(), async () => dataDir)
      await after.configure({ jobs: [job] })
      await after.load()
      const runs = await after.getRuns()
      assert.deepEqual(runs.map(run => [run.jobId, run.status, run.trigger]), [['j1', 'success', 'manual']])
      assert.ok(runs[0]?.log.some(entry => entry.message.startsWith('forced a full')))
      await after.unload()
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it('the executor skips a schedule that fired for a disabled job, and refuses XO jobs that are not its own', async () => {
    const { xo, engine, plugin } = setUp()
    await plugin.configure({ jobs: [{ id: 'j1', name: 'Nightly', vms: ['vm-a'], remote: 'r1', enabled: false, schedule: { cron: '0 * * * *' } }] })
    await plugin.load()
    const [xoJob] = xo.jobs.values()
    assert.ok(xoJob)
    const schedule = { id: 's1', jobId: xoJob.id, cron: '0 * * * *', enabled: true }
    assert.equal(await plugin.executeXoJob({ job: xoJob, schedule }), 'skipped')
    assert.equal(engine.runs.length, 0)
    await assert.rejects(plugin.executeXoJob({ job: { id: 'other', type: 'backup' } }), /not a continuous delta job/)
    await assert.rejects(plugin.executeXoJob({ job: { id: 'gone', type: JOB_TYPE, continuousDeltaJobId: 'deleted-job' } }), /no job with id deleted-job/)
    await plugin.unload()
  })
})
