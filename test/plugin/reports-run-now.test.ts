/**
 * Reports and running a job from XO's web UI (issue 12, items 3 and 4), through the host double
 * and xo-lib: transports are installed on `xo` by stand-ins of XO's transport plugins
 * (test/fixtures/transport-plugins/) as those plugins install theirs (`xo.defineProperty` at load,
 * removed at unload); a job is run from the plugin's test form (`plugin.test`), as the "Test
 * plugin" button does.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { REPO_ROOT, startHostDouble } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const PLUGIN = 'continuous-delta'
const TRANSPORTS = ['email', 'xmpp', 'slack', 'icinga2'] as const
type Json = Record<string, unknown>

describe('reports through XO transports, and run now from the plugin test form', function () {
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remoteDir: string
  let remote: string
  let vm: string

  before(async function () {
    pool = await startSimulatedPool()
    remoteDir = await mkdtemp(join(tmpdir(), 'reports-remote-'))
    host = await startHostDouble({ pools: [pool], remotes: [{ name: 'nas', url: `file://${remoteDir}` }] })
    remote = host.remoteIds[0]!
    admin = await host.signIn()
    vm = pool.sim.findVm('vm2').uuid
    for (const transport of TRANSPORTS) {
      await host.app.loadPluginPackage(join(REPO_ROOT, 'test', 'fixtures', 'transport-plugins', `xo-server-transport-${transport}`))
    }
  })

  after(async function () {
    await host?.close()
    await pool?.close()
    if (remoteDir !== undefined) await rm(remoteDir, { recursive: true, force: true })
  })

  async function sent(transport: (typeof TRANSPORTS)[number]): Promise<Json[]> {
    const text = await readFile(join(host.dataDir, `transport-${transport}`, 'sent.ndjson'), 'utf8').catch(() => '')
    return text.split('\n').filter(line => line !== '').map(line => JSON.parse(line) as Json)
  }

  async function counts(): Promise<number[]> {
    return Promise.all(TRANSPORTS.map(async transport => (await sent(transport)).length))
  }

  async function saveJobs(jobs: Json[]): Promise<void> {
    const plugins = await admin.call<{ id: string; configuration?: Json }[]>('plugin.get')
    const configuration = plugins.find(plugin => plugin.id === PLUGIN)?.configuration ?? {}
    await admin.call('plugin.configure', { id: PLUGIN, configuration: { ...configuration, jobs } })
  }

  const runNow = (job: string): Promise<unknown> => admin.call('plugin.test', { id: PLUGIN, data: { job } })

  it('the plugin offers a test form that runs a job now, by its name', async function () {
    const plugins = await admin.call<{ id: string; testable: boolean; testSchema?: Json }[]>('plugin.get')
    const plugin = plugins.find(plugin => plugin.id === PLUGIN)
    assert.equal(plugin?.testable, true)
    assert.deepEqual(plugin?.testSchema?.['required'], ['job'])
    await saveJobs([{ name: 'Reported', vms: [vm], remote, reportWhen: 'always', reportRecipients: ['admin@example.org'] }])
    // resolves (XO's button shows a tick) once the run succeeded
    await runNow('reported')
    const logs = Object.values(await admin.call<Record<string, { jobName?: string; status: string }>>('backupNg.getAllLogs'))
    assert.deepEqual(logs.filter(log => log.jobName === 'Reported').map(log => log.status), ['success'], 'the run is in Backup → Logs')
    await assert.rejects(runNow('Nope'), (error: Error) => /no job named "Nope"; the jobs are: "Reported"/.test(error.message))
  })

  it('sends a Markdown report in the manner of XO through every transport loaded', async function () {
    const [mail] = await sent('email')
    assert.ok(mail)
    assert.deepEqual(mail['to'], ['admin@example.org'])
    assert.match(String(mail['subject']), /success .*Reported/)
    const markdown = String(mail['markdown'])
    for (const part of [/Global status: success/, /\*\*Job\*\*: Reported/, /### vm2/, /\*\*Status\*\*: success/, /\*\*Duration\*\*: /, /\*\*Transfer size\*\*: \d/, /\*\*Transfer speed\*\*: /, /\*\*Merges\*\*: 0/]) {
      assert.match(markdown, part)
    }
    assert.deepEqual((await sent('xmpp'))[0]?.['to'], ['admin@example.org'])
    assert.match(String((await sent('slack'))[0]?.['message']), /### vm2/)
    assert.equal((await sent('icinga2'))[0]?.['status'], 'OK')
  })

  it('a transport unloaded is no longer used; reportWhen failure stays quiet on success and reports a failure', async function () {
    await admin.call('plugin.unload', { id: 'transport-email' })
    assert.equal(Reflect.get(host.app, 'sendEmail'), undefined, 'gone with its plugin')
    const before = await counts()
    await runNow('Reported')
    assert.deepEqual(await counts(), [before[0], before[1]! + 1, before[2]! + 1, before[3]! + 1])
    await admin.call('plugin.load', { id: 'transport-email' })

    await saveJobs([{ name: 'Reported', vms: [vm], remote, reportWhen: 'failure', reportRecipients: ['admin@example.org'] }])
    const quiet = await counts()
    await runNow('Reported')
    assert.deepEqual(await counts(), quiet, 'nothing sent for a success')

    pool.sim.faults.failNextCall('VM.snapshot', 'SR_BACKEND_FAILURE_44', ['', 'There is insufficient space'])
    await assert.rejects(runNow('Reported'), (error: Error) => /job "Reported": 1 of 1 VM\(s\) not backed up: vm2: .*(SR_BACKEND_FAILURE_44|insufficient space)/.test(error.message))
    const mails = await sent('email')
    assert.equal(mails.length, quiet[0]! + 1)
    assert.match(String(mails.at(-1)?.['markdown']), /Global status: failure[\s\S]*## 1 Failure[\s\S]*\*\*Error\*\*: /)
    assert.equal((await sent('icinga2')).at(-1)?.['status'], 'CRITICAL')

    await saveJobs([{ name: 'Reported', vms: [vm], remote }])
    const never = await counts()
    await runNow('Reported')
    assert.deepEqual(await counts(), never, 'no report unless asked for')
  })
})
