/**
 * An encrypted remote, as XO's Remotes page makes one: `encryptionKey` in the remote's URL, VHD
 * directories required. `@xen-orchestra/fs` then encrypts every file it writes with the key and
 * keeps `encryption.json` (the algorithm) and `metadata.json` (a check of the key) at the root.
 * Backup, merges past retention, restore and verify all go through it; the files at rest hold
 * no plaintext of the guest's disk nor of the metadata.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { startHostDouble } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import type { SimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024
/** aes-256-gcm: a 32-character key */
const KEY = 'k3y-of-thirty-two-characters-ok!'

async function filesUnder(dir: string): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) files.push(...(await filesUnder(path)))
    else files.push(path)
  }
  return files
}

describe('an encrypted remote (encryptionKey in its URL)', function () {
  let pool: SimulatedPool
  let host: HostDouble
  let admin: XoClient
  let remoteDir: string
  let remote: string

  before(async function () {
    pool = await startSimulatedPool()
    remoteDir = await mkdtemp(join(tmpdir(), 'encrypted-remote-'))
    host = await startHostDouble({ pools: [pool], remotes: [{ name: 'vault', url: `file://${remoteDir}?useVhdDirectory=true&encryptionKey=${KEY}` }] })
    remote = host.remoteIds[0]!
    admin = await host.signIn()
  })

  after(async function () {
    await host?.close()
    await pool?.close()
    if (remoteDir !== undefined) await rm(remoteDir, { recursive: true, force: true })
  })

  const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => admin.call<T>(`continuousDelta.${method}`, params)

  it('backs up, merges past retention, restores byte-exact and verifies; nothing at rest is plaintext', async function () {
    const vm = pool.sim.findVm('vm1').uuid
    const system = pool.sim.vdisOf(vm)[0]!.uuid
    const job = await call<string>('createJob', { name: 'Encrypted', vms: [vm], remote, retention: 2 })
    const written: Buffer[] = []
    const hashes = new Map<string, string>()
    for (let run = 0; run < 4; run++) {
      const data = randomBytes(64 * 1024)
      written.push(data)
      await pool.sim.writeGuest(system, (run + 1) * 3 * MiB, data)
      const result = await call<{ status: string; vms: { restorePoint?: string; merges?: unknown[]; disks: { mode: string }[] }[] }>('runJob', { id: job })
      assert.equal(result.status, 'success', JSON.stringify(result))
      assert.deepEqual(result.vms[0]?.disks.map(disk => disk.mode), [run === 0 ? 'full' : 'delta'])
      if (run >= 2) assert.ok((result.vms[0]?.merges ?? []).length >= 1, `run ${run} merged past retention`)
      hashes.set(result.vms[0]!.restorePoint!, await pool.sim.hashVdi(system))
    }

    const points = await call<{ id: string }[]>('listRestorePoints', { remote, vm })
    assert.equal(points.length, 2)
    for (const point of points) {
      const newVm = await call<string>('restore', { remote, restorePoint: point.id, sr: pool.sim.defaultSr() })
      assert.equal(await pool.sim.hashVdi(pool.sim.vdisOf(newVm)[0]!.uuid), hashes.get(point.id), point.id)
    }
    const report = await call<{ ok: boolean }>('verify', { remote })
    assert.equal(report.ok, true, JSON.stringify(report))

    // what @xen-orchestra/fs keeps at the root of an encrypted remote
    const description = JSON.parse(await readFile(join(remoteDir, 'encryption.json'), 'utf8')) as { algorithm?: string }
    assert.notEqual(description.algorithm ?? 'none', 'none')
    // disks are VHD directories, and no file holds the guest's data or readable metadata
    const files = await filesUnder(join(remoteDir, 'xo-vm-backups'))
    assert.ok(files.some(file => /\/data\/[^/]+\.vhd\//.test(file)), 'VHD directories')
    for (const file of files) {
      const raw = await readFile(file)
      for (const data of written) assert.equal(raw.indexOf(data.subarray(0, 4096)), -1, `${file} holds guest data in clear`)
      if (file.endsWith('.json')) assert.throws(() => JSON.parse(raw.toString('utf8')), `${file} is readable`)
    }
  })

  it('a wrong key is refused clearly, nothing written', async function () {
    const wrong = await host.addRemote('vault, wrong key', `file://${remoteDir}?useVhdDirectory=true&encryptionKey=${'x'.repeat(32)}`)
    await assert.rejects(call('listRestorePoints', { remote: wrong }), (error: Error) => error.message.length > 0)
  })
})
