/**
 * The backup process killed (SIGKILL) at seeded points of a run: during the transfer, the
 * commit, and the merges of retention. The job runs in a child process against the simulated
 * pool of this process, and dies right before its Nth change to the remote. After each crash the
 * job runs again: it must succeed, and every restore point ever committed (and still within
 * retention) must restore byte-exact.
 *
 * `crash.test.ts` (npm test) kills once in each phase on VHD files and on VHD directories;
 * `crash.campaign.ts` (npm run test:campaign) kills 12 and 9 times.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import { stat, utimes } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { JobSpec } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { vmDir } from '../../src/repository/layout.js'
import { MiB, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'
import type { CrashChildLine, CrashRunSpec } from './crash-child.js'
import { phaseOf } from './crash-phases.js'
import type { Change, CrashGo, Phase } from './crash-phases.js'
import { faultyHandler } from './faulty-handler.js'
import { RestorePointLedger } from './ledger.js'
import type { ProfileName } from '../simulator/profiles.js'
import { SeededRandom } from './random.js'

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url))
const CHILD_TIMEOUT_MS = 60_000
const RETENTION = 2

interface ChildRun {
  readonly killed: boolean
  readonly changes: Change[]
  readonly done?: Extract<CrashChildLine, { done: unknown }>['done']
  readonly stderr: string
}

/**
 * A child process running the job once: started ahead (it loads and connects meanwhile), then
 * told to go, with the change it must die before.
 */
class CrashChild {
  readonly #child: ChildProcessWithoutNullStreams
  readonly #closed: Promise<{ signal: NodeJS.Signals | null }>
  readonly #ready: Promise<void>
  #out = ''
  #stderr = ''

  constructor(spec: CrashRunSpec) {
    this.#child = spawn(process.execPath, [CHILD], { env: { ...process.env, CRASH_RUN: JSON.stringify(spec) } })
    const child = this.#child
    let ready: () => void
    this.#ready = new Promise(resolve => (ready = resolve))
    child.stdout.on('data', (chunk: Buffer) => {
      this.#out += chunk.toString()
      if (this.#out.includes('{"ready":true}')) ready()
    })
    child.stderr.on('data', (chunk: Buffer) => void (this.#stderr += chunk.toString()))
    this.#closed = new Promise(resolve => child.once('close', (_code, signal) => resolve({ signal })))
    void this.#closed.then(() => ready())
  }

  async go(go: CrashGo): Promise<ChildRun> {
    await this.#ready
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
    this.#child.stdin.end(JSON.stringify(go) + '\n')
    const { signal } = await this.#closed
    clearTimeout(timer)
    const lines = this.#out
      .split('\n')
      .filter(line => line.startsWith('{'))
      .map(line => JSON.parse(line) as CrashChildLine)
    const changes = lines.flatMap(line => ('change' in line ? [line.change] : []))
    const done = lines.find((line): line is Extract<CrashChildLine, { done: unknown }> => 'done' in line)?.done
    return { killed: signal === 'SIGKILL', changes, ...(done === undefined ? {} : { done }), stderr: this.#stderr }
  }

  async dispose(): Promise<void> {
    this.#child.kill('SIGKILL')
    await this.#closed
  }
}

export function crashSuite(kind: 'file' | 'file-vhd-directory', seed: number, kills: number, profile?: ProfileName): void {
  describe(`reliability: SIGKILL during runs (${kind}${profile === undefined ? '' : `, ${profile}`})`, function () {
    let harness: Harness
    let vm: string
    let disks: string[]
    let ledger: RestorePointLedger
    let job: JobSpec
    const random = new SeededRandom(seed)
    const phases = new Map<Phase, number>()
    let changesOfLastRun: Change[] = []

    before(async function () {
      harness = await startHarness({ remote: kind, ...(profile === undefined ? {} : { profile }) })
      const created = harness.pool.sim.createVm({
        name: 'crashy',
        disks: [
          { name: 'system', size: 12 * MiB, bootable: true },
          { name: 'data', size: 6 * MiB },
        ],
      })
      vm = created.vm
      disks = created.vdis
      job = harness.job([vm], { retention: RETENTION })
      ledger = new RestorePointLedger({ sim: harness.pool.sim, vm, disks, jobId: job.id, handler: () => harness.handler })
    })

    after(async function () {
      await harness?.close()
    })

    async function guestWrites(): Promise<void> {
      for (let i = 0; i < 3; i++) {
        const disk = random.int(0, disks.length)
        const size = disk === 0 ? 12 * MiB : 6 * MiB
        const length = random.int(1, 64) * 4096
        await harness.pool.sim.writeGuest(disks[disk]!, random.int(0, (size - length) / 4096) * 4096, random.bytes(length))
      }
    }

    /** a normal run in this process; keeps the list of its changes to the remote */
    async function normalRun(): Promise<void> {
      const changes: Change[] = []
      const recording = faultyHandler(harness.handler, ({ method, path }) => void changes.push({ method, path }))
      await ledger.succeed(() => runJob(job, { ...harness.env(), getRemoteHandler: async () => recording }))
      changesOfLastRun = changes
    }

    /** which change of `phase` to die before (1-based), drawn among those of the last normal run */
    function pickChange(phase: Phase): number {
      const count = changesOfLastRun.filter((_, i) => phaseOf(changesOfLastRun.slice(0, i + 1)) === phase).length
      return random.int(1, Math.max(1, count) + 1)
    }

    /** a crash leaves the remote lock held; it goes stale (as it would after its timeout) */
    async function ageStaleLock(): Promise<boolean> {
      const lock = join(harness.remote.path!, `${vmDir(vm)}.lock`)
      const found = await stat(lock).then(
        () => true,
        () => false,
      )
      if (found) {
        const past = new Date(Date.now() - 60_000)
        await utimes(lock, past, past)
      }
      return found
    }

    it('two runs to start the chain', async function () {
      await guestWrites()
      await normalRun()
      await guestWrites()
      await normalRun()
      assert.ok(changesOfLastRun.length > 0)
    })

    it(`${kills} crashes at seeded points, each followed by a successful run`, async function () {
      let refusedWhileLocked = false
      const targets: Phase[] = ['transfer', 'commit', 'retention']
      let next = new CrashChild({ pool: harness.pool, remote: harness.remote.url, job })
      try {
        for (let kill = 0; kill < kills; kill++) {
          await guestWrites()
          const target = targets[kill % targets.length]!
          const nth = pickChange(target)
          const child = next
          let run: ChildRun | undefined
          const attempt = await ledger.attempt(async () => {
            run = await child.go({ phase: target, nth })
            throw new Error('killed')
          })
          // the next child loads and connects while this crash is checked
          next = new CrashChild({ pool: harness.pool, remote: harness.remote.url, job })
          assert.ok(run !== undefined)
          const last = run.changes.at(-1)
          const where = `crash ${kill}, before change ${nth} of ${target} (${last?.method} ${last?.path})`
          if (!run.killed) {
            assert.equal(run.done?.status, 'success', `${where}: ${JSON.stringify(run.done)} ${run.stderr}`)
            continue
          }
          const phase = phaseOf(run.changes)
          phases.set(phase, (phases.get(phase) ?? 0) + 1)
          let step = 'right after the crash'
          try {
            if (attempt.committed.length === 0) RestorePointLedger.assertReferenceUnchanged(attempt)
            const locked = await ageStaleLock()
            if (locked && !refusedWhileLocked) {
              // right after a crash the lock is not stale yet: a new run is refused, not let in
              const lock = join(harness.remote.path!, `${vmDir(vm)}.lock`)
              await utimes(lock, new Date(), new Date())
              const refused = await runJob(job, harness.env())
              assert.match(refused.vms[0]!.error ?? '', /being written by another process/)
              refusedWhileLocked = true
              await ageStaleLock()
            }
            // an interrupted merge is finished by the chain reader itself: no run needed first
            await ledger.assertRestorable({ keep: RETENTION })
            step = 'in the next run'
            // at once, often in the same second as the crashed run: its leftovers are removed before
            // the new run dates itself past every name still there, so no name collides
            await guestWrites()
            await normalRun()
            step = 'after the next run'
            await ledger.assertRestorable({ keep: RETENTION })
            // the migration block of the killed run was lifted by the next one
            assert.deepEqual(harness.pool.sim.findVm(vm).blocked_operations, {}, 'migration blocks left')
          } catch (error) {
            throw new Error(`${where}, ${phase}, ${step}: ${(error as Error).message}`, { cause: error })
          }
        }
      } finally {
        await next.dispose()
      }
      for (const phase of targets) {
        assert.ok((phases.get(phase) ?? 0) > 0, `no crash during ${phase}: ${JSON.stringify([...phases])}`)
      }
    })
  })
}
