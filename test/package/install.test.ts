/**
 * The package installs (issue 12, item 1): the README's install commands, run exactly as written
 * (only `PLUGINS=` points at a folder of the test's own), pack this checkout and install the
 * tarball into a fresh folder; the installed copy is then loaded by the host double, backs up a VM
 * of the simulated pool, and its CLI runs as the README's disaster-recovery section writes it.
 * The published manifest has no `file:` dependency and names none of the packages the mirror
 * lacks, so a public-registry user gets the real ones.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

import { REPO_ROOT, startHostDouble } from '../helpers/host.js'
import type { HostDouble } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const run = promisify(execFile)
const MISSING_FROM_MIRROR = ['@vates/diff', '@vates/stream-reader', 'xo-remote-parser']

/** the shell block between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in the README */
async function readmeBlock(name: string): Promise<string> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8')
  const match = new RegExp(`<!-- ${name}:begin -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\`\\n<!-- ${name}:end -->`).exec(readme)
  assert.ok(match?.[1] !== undefined, `README.md has a ${name} block`)
  return match[1]
}

async function readdirDeep(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String)
}

type Manifest = { [field: string]: unknown }

function specs(manifest: Manifest, field: string): Record<string, string> {
  const value = manifest[field]
  return typeof value === 'object' && value !== null ? (value as Record<string, string>) : {}
}

describe('package: installed as the README says', function () {
  this.timeout(600_000)
  let folder: string
  let remoteDir: string
  let pool: SimulatedPool | undefined
  let host: HostDouble | undefined
  let installed: string

  before(async function () {
    folder = await mkdtemp(join(tmpdir(), 'xo-plugins-'))
    remoteDir = await mkdtemp(join(tmpdir(), 'installed-remote-'))
    installed = join(folder, 'node_modules', 'xo-server-continuous-delta')
  })

  after(async function () {
    await host?.close()
    await pool?.close()
    await rm(folder, { recursive: true, force: true })
    await rm(remoteDir, { recursive: true, force: true })
  })

  it('packs and installs into a fresh folder with the README commands, as written', async function () {
    const script = await readmeBlock('install')
    const [first, ...rest] = script.split('\n')
    assert.equal(first, 'PLUGINS=/opt/xo-plugins', 'the block starts by naming the folder')
    await run('bash', ['-euo', 'pipefail', '-c', [`PLUGINS=${folder}`, ...rest].join('\n')], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 })
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as Manifest
    const own = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as Manifest
    assert.equal(manifest['version'], own['version'])
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies']) {
      for (const [name, spec] of Object.entries(specs(manifest, field))) {
        assert.ok(!spec.startsWith('file:') && !spec.startsWith('link:'), `${field}.${name} = ${spec}: a published manifest names registry packages only`)
        assert.ok(!MISSING_FROM_MIRROR.includes(name), `${field}.${name}: left to the libraries that need it`)
      }
    }
    // a public-registry user gets the real packages: the libraries ask for them themselves
    const vhdLib = JSON.parse(await readFile(join(folder, 'node_modules', 'vhd-lib', 'package.json'), 'utf8')) as Manifest
    const fs = JSON.parse(await readFile(join(folder, 'node_modules', '@xen-orchestra', 'fs', 'package.json'), 'utf8')) as Manifest
    assert.ok('@vates/diff' in specs(vhdLib, 'dependencies') && '@vates/stream-reader' in specs(vhdLib, 'dependencies'))
    assert.match(specs(fs, 'dependencies')['xo-remote-parser'] ?? '', /0\.10/)
    // the CLI is on the folder's bin path
    await stat(join(folder, 'node_modules', '.bin', 'xo-continuous-delta'))
  })

  it('the installed copy loads into the host double and backs a VM up', async function () {
    pool = await startSimulatedPool()
    host = await startHostDouble({ pluginDir: installed, pools: [pool], remotes: [{ name: 'nas', url: `file://${remoteDir}` }] })
    assert.equal(host.pluginId, 'continuous-delta')
    const plugin = await host.app.getPlugin('continuous-delta')
    assert.equal(plugin.loaded, true)
    assert.equal(plugin.version, JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')).version)
    const admin = await host.signIn()
    const vm = pool.sim.findVm('vm2').uuid
    const id = await admin.call<string>('continuousDelta.createJob', { name: 'Installed', vms: [vm], remote: host.remoteIds[0] })
    const result = await admin.call<{ status: string; vms: { disks: { mode: string }[] }[] }>('continuousDelta.runJob', { id })
    assert.equal(result.status, 'success')
    assert.deepEqual(result.vms[0]?.disks.map(disk => disk.mode), ['full'])
  })

  it('the CLI runs as the README writes it, from the install folder and from the checkout', async function () {
    const lines = (await readmeBlock('cli')).split('\n').filter(line => /^npx xo-continuous-delta (list|verify) /.test(line))
    assert.equal(lines.length, 2)
    const [list, verify] = lines.map(line => line.replace('file:///mnt/backups', `file://${remoteDir}`))
    const points = await readdirDeep(remoteDir)
    assert.ok(points.some(file => file.endsWith('.json')), 'the run wrote a restore point')
    // verify from the install folder; list from both (a checkout after `npm ci` has the bin too)
    const verified = await run('bash', ['-euo', 'pipefail', '-c', verify!], { cwd: folder })
    assert.match(verified.stdout, /1 restore point checked: no problems found/, verified.stdout)
    for (const cwd of [folder, REPO_ROOT]) {
      const listed = await run('bash', ['-euo', 'pipefail', '-c', list!], { cwd })
      assert.match(listed.stdout, /\d{4}-\d\d-\d\dT/, `${cwd}: the restore point is listed: ${listed.stdout}`)
    }
  })
})
