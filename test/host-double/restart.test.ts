/**
 * The host double keeps what xo-server 5.207 keeps across a restart, and gives jobs their user as
 * it does: remotes not added twice, jobs read back from its store as xo-server's redis collection
 * gives them, a run the stop interrupted reported at the next start.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { REPO_ROOT, startHostDouble, type HostDouble } from '../helpers/host.js'
import type { ExecutorParams } from './jobs.js'
import type { XoApp } from './app.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

describe('host double: jobs and their users, backup logs, restarts', function () {
  let dataDir: string
  let remoteDir: string
  let host: HostDouble | undefined

  beforeEach(async function () {
    dataDir = await mkdtemp(join(tmpdir(), 'hd-restart-'))
    remoteDir = await mkdtemp(join(tmpdir(), 'hd-restart-remote-'))
  })

  afterEach(async function () {
    await host?.close()
    host = undefined
    await rm(dataDir, { recursive: true, force: true })
    await rm(remoteDir, { recursive: true, force: true })
  })

  it('a restart with the same data dir and remotes finds its remotes, never adds them twice', async function () {
    const remotes = [{ name: 'nfs-like', url: `file://${remoteDir}` }]
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir, remotes })
    const ids = host.remoteIds
    await host.close()
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir, remotes })
    assert.deepEqual(host.remoteIds, ids)
    assert.deepEqual((await host.app.getAllRemotes()).map(remote => remote.id), ids)
  })

  it("a job keeps the user it was created with: the API's job.create gives the caller's, xo.createJob none", async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    const app = host.app
    const seen: ExecutorParams<XoApp>[] = []
    app.registerJobExecutor('probe', params => void seen.push(params))
    const admin = await host.signIn()
    const viaApi = await admin.call<string>('job.create', { job: { type: 'probe', name: 'via API' } })
    const viaXo = await app.createJob({ type: 'probe', name: 'via xo' })
    assert.equal((await app.getJob(viaApi)).userId, admin.user!.id)
    assert.equal((await app.getJob(viaXo.id)).userId, undefined)
    await app.runJobSequence([viaApi, viaXo.id])
    assert.deepEqual(
      seen.map(params => [params.job.id, params.connection.get<string | undefined>('user_id', undefined), params.jobData.userId]),
      [
        [viaApi, admin.user!.id, admin.user!.id],
        [viaXo.id, undefined, undefined],
      ]
    )
  })

  it("the backup logs keep a run only when its job's type is backup or it has no key, as xo-server's", async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    const app = host.app
    app.registerJobExecutor('probe', () => undefined)
    app.registerJobExecutor('backup', () => undefined)
    const plain = await app.createJob({ type: 'probe', name: 'no key' })
    const keyed = await app.createJob({ type: 'probe', name: 'keyed', key: 'k' })
    const backup = await app.createJob({ type: 'backup', name: 'XO backup', key: 'b' })
    await app.runJobSequence([plain.id, keyed.id, backup.id])
    const shown = Object.values(app.getBackupNgLogs()).map(log => log.jobId)
    assert.deepEqual(shown.sort(), [plain.id, backup.id].sort())
    assert.equal(Object.values(app.getJobRunLogs()).length, 3)
  })

  it("jobs read back as xo-server's store gives them: every property through JSON, userId a string", async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    const job = await host.app.createJob({ type: 'probe', name: '2024', userId: 7 as unknown as string, settings: { a: 1 } })
    assert.equal(job.name, 2024)
    assert.equal(job.userId, '7')
    assert.deepEqual((await host.app.getJob(job.id)).settings, { a: 1 })
  })

  it('a run the stop interrupted is reported at the next start (job:terminated) and its runId removed', async function () {
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    let started!: () => void
    const running = new Promise<void>(resolve => (started = resolve))
    host.app.registerJobExecutor('probe', () => {
      started()
      return new Promise(() => {}) // the host stops before it ends
    })
    const job = await host.app.createJob({ type: 'probe', name: 'long' })
    void host.app.runJobSequence([job.id]).catch(() => {})
    await running
    const runId = (await host.app.getJob(job.id)).runId
    assert.equal(typeof runId, 'string')
    await host.close()
    const stored = JSON.parse(await readFile(join(dataDir, 'jobs.json'), 'utf8')) as { id: string; runId?: string }[]
    assert.equal(stored.find(candidate => candidate.id === job.id)?.runId, runId, 'the interrupted run stays in the store')

    // the report is made on plugins:registered, before the host double's start resolves
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    const after = JSON.parse(await readFile(join(dataDir, 'jobs.json'), 'utf8')) as { id: string; runId?: string }[]
    assert.equal(after.find(candidate => candidate.id === job.id)?.runId, undefined)
    assert.equal((await host.app.getJob(job.id)).runId, undefined)
  })
})
