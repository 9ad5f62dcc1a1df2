/**
 * Started as a child process by close.test.ts: starts a simulated pool and a host double using
 * every kind of resource (pool connection, remote handler, schedule timer, signed-in client,
 * task), closes them, and then lets the process end on its own. A handle left open keeps it
 * alive; the parent test notices.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'

const remoteDir = await mkdtemp(join(tmpdir(), 'hd-close-'))
const pool = await startSimulatedPool()
const host = await startHostDouble({
  pluginDir: join(REPO_ROOT, 'test/fixtures/trivial-plugin'),
  pools: [{ url: pool.url, user: pool.user, password: pool.password }],
  remotes: [{ name: 'r', url: 'file://' + remoteDir }],
})
const admin = await host.signIn()
await admin.call('trivial.work', { steps: 2 })
const handler = await host.app.getRemoteHandler(host.remoteIds[0]!)
await handler.outputFile('probe', 'x')
const vm = pool.sim.findVm('vm1')
await host.app.getXapi(vm.uuid).call('VM.get_uuid', vm.$ref)
const job = await host.app.createJob({ type: 'trivial', name: 'probe' })
await host.app.createSchedule({ cron: '* * * * *', jobId: job.id, enabled: true })

await host.close()
await pool.close()
await rm(remoteDir, { recursive: true, force: true })
process.send?.({ closed: true, resources: process.getActiveResourcesInfo() })
