/**
 * The disaster-recovery CLI as an administrator runs it (`node dist/cli/main.js`), on a remote
 * written by the plugin, with no xo-server (host double) running any more. Build first:
 * `npx tsc -p tsconfig.json`.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cp, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { REPO_ROOT, startHostDouble } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const CLI = join(REPO_ROOT, 'dist', 'cli', 'main.js')
const PASSWORD = 'Tr0ub4dor&3-cli'
const MiB = 1024 * 1024

interface CliRun {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

function cli(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise(resolve => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

interface PointView {
  readonly id: string
  readonly vm: string
  readonly timestamp: number
}

function isPointList(value: unknown): value is PointView[] {
  return Array.isArray(value) && value.every(item => typeof item === 'object' && item !== null && typeof Reflect.get(item, 'id') === 'string')
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter(entry => entry.isFile()).map(entry => join(entry.parentPath, entry.name))
}

describe('disaster-recovery CLI (no xo-server running)', function () {
  let pool: SimulatedPool
  let remoteDir: string
  let remoteUrl: string
  let vm1: string
  let system: string
  const hashes: string[] = []
  const outputs: string[] = []

  const run = async (args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> => {
    const result = await cli(args, env)
    outputs.push(result.stdout, result.stderr)
    return result
  }

  before(async function () {
    pool = await startSimulatedPool({ password: PASSWORD })
    remoteDir = await mkdtemp(join(tmpdir(), 'cli-remote-'))
    remoteUrl = `file://${remoteDir}`
    vm1 = pool.sim.findVm('vm1').uuid
    const [systemVdi] = pool.sim.vdisOf(vm1)
    assert.ok(systemVdi)
    system = systemVdi.uuid

    // the plugin writes the backups, then xo-server is gone
    const host = await startHostDouble({ pools: [pool], remotes: [{ name: 'nas', url: remoteUrl }] })
    try {
      const xo = await host.signIn()
      const id = await xo.call<string>('continuousDelta.createJob', { name: 'DR', vms: [vm1], remote: host.remoteIds[0] })
      await xo.call('continuousDelta.runJob', { id })
      hashes.push(await pool.sim.hashVdi(system))
      await pool.sim.writeGuest(system, 3 * MiB, randomBytes(200 * 1024))
      await xo.call('continuousDelta.runJob', { id })
      hashes.push(await pool.sim.hashVdi(system))
    } finally {
      await host.close()
    }
  })

  after(async function () {
    await pool?.close()
    if (remoteDir !== undefined) await rm(remoteDir, { recursive: true, force: true })
  })

  it('prints its help, and exits 2 on a wrong command line', async function () {
    const help = await run(['--help'])
    assert.equal(help.code, 0)
    assert.ok(help.stdout.includes('xo-continuous-delta list'))
    const wrong = await run(['list', '--remote', remoteUrl, '--bogus'])
    assert.equal(wrong.code, 2)
    assert.ok(wrong.stderr.includes('--bogus'), wrong.stderr)
    assert.equal((await run(['frobnicate'])).code, 2)
    assert.equal((await run(['restore', '--remote', remoteUrl, '--restore-point', 'latest', '--vm', vm1, '--pool', pool.url])).code, 2, 'no password given')
    const badPoint = await run(['restore', '--remote', remoteUrl, '--restore-point', '../../etc/passwd', '--pool', pool.url], { XO_CONTINUOUS_DELTA_PASSWORD: PASSWORD })
    assert.equal(badPoint.code, 2)
    assert.ok(badPoint.stderr.includes('--restore-point'), badPoint.stderr)
  })

  it('lists the restore points, oldest first, as JSON and for humans', async function () {
    const json = await run(['list', '--remote', remoteUrl, '--json'])
    assert.equal(json.code, 0, json.stderr)
    const points: unknown = JSON.parse(json.stdout)
    assert.ok(isPointList(points))
    assert.equal(points.length, 2)
    assert.ok(points.every(point => point.vm === vm1))
    assert.ok(points[0]!.timestamp < points[1]!.timestamp)

    const human = await run(['list', '--remote', remoteUrl, '--vm', vm1])
    assert.equal(human.code, 0, human.stderr)
    assert.ok(human.stdout.includes(vm1))
    for (const point of points) assert.ok(human.stdout.includes(point.id))
    assert.ok(human.stdout.includes('2 restore points'))
  })

  it('lists a restore point whose metadata is truncated as damaged, with its reason, and leaves the file as it is', async function () {
    const copy = await mkdtemp(join(tmpdir(), 'cli-remote-damaged-'))
    try {
      await cp(remoteDir, copy, { recursive: true })
      const points: unknown = JSON.parse((await run(['list', '--remote', `file://${copy}`, '--json'])).stdout)
      assert.ok(isPointList(points))
      const file = join(copy, points[1]!.id)
      const truncated = (await readFile(file)).subarray(0, 100)
      await writeFile(file, truncated)

      const json = await run(['list', '--remote', `file://${copy}`, '--json'])
      assert.equal(json.code, 0, json.stderr)
      const listed = JSON.parse(json.stdout) as { id: string; status: string; reason?: string }[]
      assert.deepEqual(listed.map(point => [point.id, point.status]), [[points[0]!.id, 'restorable'], [points[1]!.id, 'damaged']])
      assert.match(listed[1]!.reason!, /not valid JSON/)
      const human = await run(['list', '--remote', `file://${copy}`])
      assert.equal(human.code, 0, human.stderr)
      assert.match(human.stdout, /DAMAGED/)
      assert.match(human.stdout, /cannot be restored: metadata is not valid JSON/)
      assert.ok(human.stdout.includes('2 restore points, 1 damaged'), human.stdout)
      assert.deepEqual(await readFile(file), truncated)
    } finally {
      await rm(copy, { recursive: true, force: true })
    }
  })

  it('reports a mistyped remote and creates nothing there', async function () {
    const missing = join(remoteDir, 'no-such-folder')
    const list = await run(['list', '--remote', `file://${missing}`])
    assert.equal(list.code, 1)
    assert.ok(list.stderr.includes('does not exist'), list.stderr)
    await assert.rejects(readdir(missing))
    const empty = await run(['verify', '--remote', `file://${join(remoteDir, 'xo-vm-backups')}`])
    assert.equal(empty.code, 1)
    assert.ok(empty.stderr.includes('no backups on this remote'), empty.stderr)
  })

  it('verifies the remote', async function () {
    const verify = await run(['verify', '--remote', remoteUrl, '--json'])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
    const report: unknown = JSON.parse(verify.stdout)
    assert.equal(typeof report === 'object' && report !== null ? Reflect.get(report, 'ok') : undefined, true)
  })

  it('verify and restore without --json print their progress as plain lines on stderr when it is not a terminal', async function () {
    const verify = await run(['verify', '--remote', remoteUrl])
    assert.equal(verify.code, 0, verify.stdout + verify.stderr)
    const verifyLines = verify.stderr.split('\n').filter(line => line.startsWith('verify: '))
    assert.equal(verifyLines.at(-1), 'verify: 100%', verify.stderr)
    assert.ok(!verify.stderr.includes('\r'))
    const restore = await run(['restore', '--remote', remoteUrl, '--pool', pool.url, '--user', pool.user, '--restore-point', 'latest', '--vm', vm1], {
      XO_CONTINUOUS_DELTA_PASSWORD: PASSWORD,
    })
    assert.equal(restore.code, 0, restore.stderr)
    const diskLines = restore.stderr.split('\n').filter(line => line.startsWith('disk "system": '))
    // a line each time a tenth is passed (how many chunks that takes is the stream's business), then 100%
    assert.ok(diskLines.length >= 2, `progress before the end: ${restore.stderr}`)
    assert.notEqual(diskLines[0], 'disk "system": 100%', restore.stderr)
    assert.equal(diskLines.at(-1), 'disk "system": 100%', restore.stderr)
  })

  it('restores the oldest and the latest restore point on the pool, bytes equal to the guest disk then; --new-mac-addresses gives new MACs', async function () {
    const listed: unknown = JSON.parse((await run(['list', '--remote', remoteUrl, '--json'])).stdout)
    assert.ok(isPointList(listed))
    const common = ['--remote', remoteUrl, '--pool', pool.url, '--user', pool.user, '--json']
    const env = { XO_CONTINUOUS_DELTA_PASSWORD: PASSWORD }

    const oldest = await run(['restore', ...common, '--sr', pool.sim.defaultSr(), '--restore-point', listed[0]!.id], env)
    assert.equal(oldest.code, 0, oldest.stderr)
    // without --sr: the pool's default SR
    const latest = await run(['restore', ...common, '--restore-point', 'latest', '--vm', vm1, '--new-mac-addresses'], env)
    assert.equal(latest.code, 0, latest.stderr)
    for (const [restore, expected] of [[oldest, hashes[0]], [latest, hashes[1]]] as const) {
      const result: unknown = JSON.parse(restore.stdout)
      const vm = typeof result === 'object' && result !== null ? Reflect.get(result, 'vm') : undefined
      assert.equal(typeof vm, 'string')
      const [disk] = pool.sim.vdisOf(String(vm))
      assert.ok(disk)
      assert.equal(await pool.sim.hashVdi(disk.uuid), expected)
    }
    const macsOf = (vm: unknown): string[] => (pool.sim.record('VM', String(vm)).VIFs as string[]).map(vif => String(pool.sim.record('VIF', vif).MAC))
    const vmOf = (restore: { stdout: string }): unknown => Reflect.get(JSON.parse(restore.stdout) as object, 'vm')
    assert.deepEqual(macsOf(vmOf(oldest)), macsOf(vm1), 'the MACs it had')
    const fresh = macsOf(vmOf(latest))
    assert.equal(fresh.length, macsOf(vm1).length)
    for (const mac of fresh) assert.ok(!macsOf(vm1).includes(mac), `${mac} is new`)
  })

  it('deletes a restore point (on a copy of the remote): the other one still restores byte-exact, verify finds nothing', async function () {
    const copy = await mkdtemp(join(tmpdir(), 'cli-remote-delete-'))
    try {
      await cp(remoteDir, copy, { recursive: true })
      const copyUrl = `file://${copy}`
      const points: unknown = JSON.parse((await run(['list', '--remote', copyUrl, '--json'])).stdout)
      assert.ok(isPointList(points))
      const deleted = await run(['delete', '--remote', copyUrl, '--restore-point', points[0]!.id])
      assert.equal(deleted.code, 0, deleted.stderr)
      assert.ok(deleted.stdout.includes(`deleted ${points[0]!.id}`), deleted.stdout)
      assert.match(deleted.stdout, /merged \d+ blocks? into /)
      const left: unknown = JSON.parse((await run(['list', '--remote', copyUrl, '--json'])).stdout)
      assert.ok(isPointList(left))
      assert.deepEqual(left.map(point => point.id), [points[1]!.id])
      assert.equal((await run(['verify', '--remote', copyUrl])).code, 0)
      const restore = await run(['restore', '--remote', copyUrl, '--pool', pool.url, '--user', pool.user, '--json', '--restore-point', points[1]!.id], { XO_CONTINUOUS_DELTA_PASSWORD: PASSWORD })
      assert.equal(restore.code, 0, restore.stderr)
      const [disk] = pool.sim.vdisOf(String(Reflect.get(JSON.parse(restore.stdout) as object, 'vm')))
      assert.equal(await pool.sim.hashVdi(disk!.uuid), hashes[1])
      const again = await run(['delete', '--remote', copyUrl, '--restore-point', points[0]!.id])
      assert.equal(again.code, 1)
      assert.ok(again.stderr.includes(points[0]!.id), again.stderr)
      assert.equal((await run(['delete', '--remote', copyUrl])).code, 2, 'no --restore-point')
    } finally {
      await rm(copy, { recursive: true, force: true })
    }
  })

  it('fails with exit code 1 on a wrong password, without printing it', async function () {
    const passwordFile = join(remoteDir, '..', `pw-${process.pid}`)
    await writeFile(passwordFile, 'not-the-password-42\n')
    try {
      const wrong = await run(['restore', '--remote', remoteUrl, '--pool', pool.url, '--restore-point', 'latest', '--vm', vm1, '--password-file', passwordFile])
      assert.equal(wrong.code, 1, wrong.stderr)
      assert.ok(!wrong.stderr.includes('not-the-password-42'), wrong.stderr)
    } finally {
      await rm(passwordFile, { force: true })
    }
  })

  it('finds a missing VHD and exits 1', async function () {
    const vhds = (await filesUnder(remoteDir)).filter(file => file.endsWith('.vhd')).sort()
    const [oldest] = vhds
    assert.ok(oldest)
    await unlink(oldest)
    const verify = await run(['verify', '--remote', remoteUrl])
    assert.equal(verify.code, 1, verify.stdout)
    assert.ok(verify.stdout.includes('FAIL'), verify.stdout)
  })

  it('never printed the pool password', function () {
    for (const output of outputs) assert.ok(!output.includes(PASSWORD))
  })
})
