/**
 * Security: secrets never leave the product (run results, task logs, run history, API errors,
 * files the host keeps), ids from outside never become paths outside the job's folder, and every
 * API method of the plugin is for admins only.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runJob } from '../../src/lifecycle/run-job.js'
import { restoreVm } from '../../src/restore/restore-vm.js'
import { startHostDouble } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { connectXapi, startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'
import { startS3 } from '../helpers/s3.js'
import type { S3Server } from '../helpers/s3.js'
import { listTree, MiB, RecordingReporter, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

const REMOTE_SECRET = 'Rem0te+Secret/5e1f-Kq'
const POOL_SECRET = 'P00l-Secret-8c2d-Wz'
const SECRETS = [REMOTE_SECRET, encodeURIComponent(REMOTE_SECRET), POOL_SECRET, encodeURIComponent(POOL_SECRET)]

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(entry => entry.isFile()).map(entry => join(entry.parentPath, entry.name))
}

function assertNoSecret(where: string, text: string): void {
  for (const secret of SECRETS) {
    assert.ok(!text.includes(secret), `${where} shows a secret: ${text.slice(Math.max(0, text.indexOf(secret) - 200), text.indexOf(secret) + 50)}`)
  }
}

/** the error as a client sees it: message, code, data, all of it */
async function errorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    const fields = error instanceof Error ? { ...error, message: error.message, stack: error.stack } : error
    return JSON.stringify(fields)
  }
  throw new Error('expected a failure')
}

describe('reliability: security', function () {
  describe('secrets stay secret', function () {
    let pool: SimulatedPool
    let s3: S3Server
    let host: HostDouble
    let admin: XoClient
    let remote: string
    let vm: string
    const seen: [string, string][] = []
    const see = (where: string, value: unknown): void => void seen.push([where, typeof value === 'string' ? value : JSON.stringify(value)])

    before(async function () {
      pool = await startSimulatedPool({ password: POOL_SECRET })
      s3 = await startS3({ secretKey: REMOTE_SECRET })
      host = await startHostDouble({ pools: [pool], remotes: [{ name: 'object storage', url: s3.url('backups', 'xo') }] })
      remote = host.remoteIds[0]!
      admin = await host.signIn()
      vm = pool.sim.findVm('vm2').uuid
    })

    after(async function () {
      await admin?.close()
      await host?.close()
      await s3?.close()
      await pool?.close()
    })

    const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)

    it('a successful run: results, restore points, verify report', async function () {
      const id = await call<string>('createJob', { name: 'secretive', vms: [vm], remote, retention: 2, enabled: false })
      see('getJobs', await call('getJobs'))
      for (let run = 0; run < 3; run++) {
        await pool.sim.writeGuest(pool.sim.vdisOf(vm)[0]!.uuid, run * MiB, Buffer.alloc(64 * 1024, run + 1))
        const result = await call<{ status: string }>('runJob', { id })
        assert.equal(result.status, 'success', JSON.stringify(result))
        see('runJob', result)
      }
      see('listRestorePoints', await call('listRestorePoints', { remote }))
      see('verify', await call('verify', { remote }))
    })

    it('failing runs and calls: the remote unreachable', async function () {
      const [job] = await call<{ id: string }[]>('getJobs')
      await s3.close()
      const result = await call<{ status: string }>('runJob', { id: job!.id })
      assert.notEqual(result.status, 'success')
      see('runJob (remote down)', result)
      see('listRestorePoints (remote down)', await errorOf(call('listRestorePoints', { remote })))
      // verify either fails or reports the remote unusable; never ok
      const verify = await call<{ ok: boolean }>('verify', { remote }).then(
        report => report,
        (error: unknown) => ({ ok: false, error: JSON.stringify(error instanceof Error ? { ...error, message: error.message } : error) }),
      )
      assert.equal(verify.ok, false)
      see('verify (remote down)', verify)
    })

    it('appear nowhere: API answers, run history, task logs, backup logs, host files', async function () {
      see('getRuns', await call('getRuns'))
      see('backup logs', host.app.getBackupNgLogs())
      see('job run logs', host.app.getJobRunLogs())
      for (const [where, text] of seen) assertNoSecret(where, text)
      // every file the host keeps for the plugin: its configuration, run logs, stores, data (the
      // host's own list of remotes holds their URLs, as xo-server's database does)
      const files = (await filesUnder(host.dataDir)).filter(file => !file.endsWith('/remotes.json'))
      assert.ok(files.length > 0)
      for (const file of files) assertNoSecret(file, await readFile(file, 'latin1'))
      // the secret is in the system (the host's own remote list holds it) and the search finds it
      const hostRemotes = join(host.dataDir, 'remotes.json')
      assert.throws(() => assertNoSecret(hostRemotes, readFileSync(hostRemotes, 'latin1')), /shows a secret/)
      assert.ok(seen.length >= 10)
    })
  })

  describe('ids from outside are no paths', function () {
    let harness: Harness
    let outside: string

    before(async function () {
      harness = await startHarness()
      outside = await mkdtemp(join(tmpdir(), 'outside-'))
    })

    after(async function () {
      await harness?.close()
      await rm(outside, { recursive: true, force: true })
    })

    for (const vm of ['../../outside', '..', 'a/../../b', '../xo-vm-backups', '00000000-0000-4000-8000-000000000000/../..']) {
      it(`a VM uuid ${JSON.stringify(vm)} is refused, nothing written`, async function () {
        const reporter = new RecordingReporter()
        const result = await runJob(harness.job([vm]), harness.env(reporter))
        assert.equal(result.status, 'failure')
        assert.match(result.vms[0]!.error ?? '', /refusing vm id|unsafe|not a uuid/i)
        assert.deepEqual(await listTree(harness.handler), [])
      })
    }

    for (const job of ['../escape', '..', 'a/b']) {
      it(`a job id ${JSON.stringify(job)} is refused, nothing written`, async function () {
        const vm = harness.pool.sim.findVm('vm2').uuid
        const result = await runJob(harness.job([vm], { id: job }), harness.env())
        assert.equal(result.status, 'failure')
        assert.match(result.vms[0]!.error ?? '', /refusing job id|unsafe/i)
        const files = await listTree(harness.handler)
        assert.ok(files.every(file => !file.includes('escape') && file.startsWith(`xo-vm-backups/${vm}`)), files.join('\n'))
      })
    }

    it('a VM and disks with malicious names are backed up inside their own folder only', async function () {
      const { vm, vdis } = harness.pool.sim.createVm({
        name: '../../../evil',
        disks: [
          { name: '../../disk/../..', size: 4 * MiB },
          { name: 'a\\..\\..\\b', size: 4 * MiB },
        ],
      })
      await harness.pool.sim.writeGuest(vdis[0]!, 0, Buffer.alloc(4096, 7))
      const result = await runJob(harness.job([vm]), harness.env())
      assert.equal(result.status, 'success', JSON.stringify(result))
      const files = await listTree(harness.handler)
      const mine = files.filter(file => file.startsWith(`xo-vm-backups/${vm}/`))
      assert.ok(mine.length > 0)
      assert.ok(files.every(file => /^xo-vm-backups\/[0-9a-f-]{36}(\/|\.lock)/.test(file)), files.join('\n'))
      assert.ok(files.every(file => !file.includes('evil')), files.join('\n'))
    })

    it('a restore point id leaving the VM folder is refused', async function () {
      const xapi = await connectXapi(harness.pool)
      try {
        for (const restorePoint of ['../outside.json', 'xo-vm-backups/../../outside.json', `${outside}/x.json`]) {
          await assert.rejects(
            restoreVm({ handler: harness.handler, restorePoint, xapi, sr: harness.pool.sim.defaultSr() }),
            (error: Error & { code?: string }) => /UNSAFE_PATH|RESTORE_POINT_NOT_FOUND|INVALID_PARAMETER/.test(String(error.code)),
          )
        }
      } finally {
        await xapi.disconnect()
      }
    })
  })

  describe('admins only', function () {
    let host: HostDouble

    before(async function () {
      host = await startHostDouble()
    })

    after(async function () {
      await host?.close()
    })

    it("every continuousDelta.* method refuses a non-admin with XO's permission error", async function () {
      const admin = await host.signIn()
      const user = await host.signIn('user@example.net', 'user')
      try {
        const methods = Object.keys(await admin.call<Record<string, unknown>>('system.getMethodsInfo')).filter(name =>
          name.startsWith('continuousDelta.'),
        )
        assert.ok(methods.length >= 9, methods.join(', '))
        for (const method of methods) {
          await assert.rejects(user.call(method, {}), (error: { code?: unknown; message?: string }) => {
            assert.equal(error.code, 2, `${method}: ${JSON.stringify(error)}`)
            assert.equal(error.message, 'not enough permissions', method)
            return true
          })
        }
      } finally {
        await user.close()
        await admin.close()
      }
    })
  })
})
