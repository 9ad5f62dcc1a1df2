/**
 * The run history at the scale of a year of nightly runs of a 50-VM job: every run kept and
 * listable, filters exact, and a query for the newest runs reading only the end of the file.
 */
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { readLinesBackwards, RunHistory } from '../../src/plugin/run-history.js'
import type { RunRecord } from '../../src/plugin/run-history.js'

const DAY = 24 * 3600 * 1000
const START = Date.UTC(2025, 0, 1, 2)
const VMS = Array.from({ length: 50 }, (_, index) => `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`)

/** night `n`: VM n % 50 fails, so each VM fails about 7 times a year */
function nightlyRun(jobId: string, night: number): RunRecord {
  const start = START + night * DAY
  const failing = VMS[night % VMS.length]
  return {
    id: `${jobId}-run-${night}`,
    jobId,
    jobName: `Job ${jobId}`,
    trigger: 'schedule',
    start,
    end: start + 3600_000,
    status: 'partial',
    result: {
      id: `result-${night}`,
      jobId,
      status: 'partial',
      start,
      end: start + 3600_000,
      vms: VMS.map(vm => ({
        vm,
        name: `vm ${vm.slice(-4)}`,
        status: vm === failing ? ('failure' as const) : ('success' as const),
        ...(vm === failing ? { error: 'transfer: the export stalled' } : {}),
        disks: [{ vdi: vm, name: 'system', mode: 'delta' as const, size: 123_456_789, durationMs: 42_000 }],
        excluded: [],
        warnings: [],
      })),
    },
    log: VMS.flatMap(vm => [
      { time: start, scope: [`VM ${vm}`], level: 'start' as const, message: `VM ${vm}` },
      { time: start + 1, scope: [`VM ${vm}`, 'transfer'], level: 'info' as const, message: 'disk "system": delta of 117 MiB' },
      { time: start + 2, scope: [`VM ${vm}`], level: 'end' as const, message: `VM ${vm}`, status: 'success' as const },
    ]),
  }
}

describe('run history', function () {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'run-history-'))
  })
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('keeps a year of nightly runs of 50 VMs per job and answers queries reading the newest end only', async function () {
    const history = new RunHistory()
    await history.useDir(dir)
    for (let night = 0; night < 365; night++) {
      for (const job of ['nightly', 'other']) {
        const run = nightlyRun(job, night)
        await history.start({ ...run, status: 'running', log: [] })
        await history.finish(run)
      }
    }
    const size = (await stat(join(dir, 'nightly.jsonl'))).size

    const all = await history.list({ job: 'nightly', limit: 1000 })
    assert.equal(all.length, 365)
    assert.deepEqual(all.map(run => run.id), Array.from({ length: 365 }, (_, night) => `nightly-run-${364 - night}`))
    assert.equal(all[0]?.status, 'partial', 'the end line wins over the start line')

    const newest = await history.list({ job: 'nightly', limit: 5 })
    assert.deepEqual(newest.map(run => run.id), ['nightly-run-364', 'nightly-run-363', 'nightly-run-362', 'nightly-run-361', 'nightly-run-360'])
    assert.ok(history.lastBytesRead < size / 20, `read ${history.lastBytesRead} of ${size} bytes`)

    // a VM's runs: all of them name it; since: the last 30 nights only, and no more is read
    const vm = VMS[7]!
    assert.equal((await history.list({ job: 'nightly', vm, limit: 1000 })).length, 365)
    const lastMonth = await history.list({ job: 'nightly', since: START + 335 * DAY, limit: 1000 })
    assert.equal(lastMonth.length, 30)
    assert.ok(history.lastBytesRead < size / 5, `read ${history.lastBytesRead} of ${size} bytes`)

    // both jobs, newest first
    const both = await history.list({ limit: 4 })
    assert.deepEqual(both.map(run => run.jobId).sort(), ['nightly', 'nightly', 'other', 'other'])
    assert.deepEqual((await history.list({ job: 'other', status: 'success' })).length, 0)
  })

  it('a run with no end line (xo-server stopped) is interrupted; a running one is running', async function () {
    const first = new RunHistory()
    await first.useDir(dir)
    const run = nightlyRun('j', 0)
    await first.start({ ...run, status: 'running', log: [] })
    assert.deepEqual((await first.list()).map(run => run.status), ['running'])

    const after = new RunHistory()
    await after.useDir(dir)
    assert.deepEqual((await after.list()).map(run => [run.id, run.status]), [['j-run-0', 'interrupted']])
    assert.deepEqual((await after.list({ status: 'interrupted' })).length, 1)
  })

  it('a run that ends while a query reads the files is listed as running or as it ended, never interrupted', async function () {
    // found by the plugin suite: getRuns polled while a scheduled run ended answered "interrupted"
    const history = new RunHistory()
    await history.useDir(dir)
    const statuses: string[] = []
    for (let night = 0; night < 20; night++) {
      const run = nightlyRun('race', night)
      await history.start({ ...run, status: 'running', log: [] })
      // the query starts first; the run ends before the query has read anything
      const listing = history.list({ job: 'race', limit: 1 })
      const finishing = history.finish({ ...run, status: 'success' })
      const [listed] = await listing
      await finishing
      statuses.push(listed?.status ?? 'none')
      const [after] = await history.list({ job: 'race', limit: 1 })
      assert.equal(after?.status, 'success')
    }
    assert.deepEqual(
      statuses.filter(status => status !== 'running' && status !== 'success'),
      [],
      `statuses seen: ${statuses.join(' ')}`,
    )
  })

  it('moves the history of an earlier version (runs.json) into the per-job files once', async function () {
    const legacy = join(dir, 'runs.json')
    await writeFile(legacy, JSON.stringify([nightlyRun('b', 1), nightlyRun('a', 0)]))
    const history = new RunHistory()
    await history.useDir(join(dir, 'runs'), legacy)
    assert.deepEqual((await readdir(dir)).sort(), ['runs'])
    assert.deepEqual((await history.list()).map(run => run.id), ['b-run-1', 'a-run-0'])
  })

  it('rotates a job file past its size bound, keeping at least that much history', async function () {
    const history = new RunHistory({ maxFileBytes: 200_000 })
    await history.useDir(dir)
    for (let night = 0; night < 40; night++) await history.finish(nightlyRun('j', night))
    assert.deepEqual((await readdir(dir)).sort(), ['j.1.jsonl', 'j.jsonl'])
    const listed = await history.list({ limit: 1000 })
    assert.equal(listed[0]?.id, 'j-run-39')
    assert.ok(listed.length * 40_000 >= 200_000, `${listed.length} runs kept`)
  })

  it('reads lines backwards across chunk boundaries', async function () {
    const file = join(dir, 'lines')
    const lines = Array.from({ length: 50 }, (_, index) => 'x'.repeat(index * 3000) + String(index))
    await writeFile(file, lines.join('\n') + '\n')
    const seen: string[] = []
    await readLinesBackwards(file, line => (seen.push(line), true))
    assert.deepEqual(seen, [...lines].reverse())
  })
})
