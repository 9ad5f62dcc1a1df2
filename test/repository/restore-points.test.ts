import assert from 'node:assert/strict'
import { listRestorePoints } from '../../src/repository/restore-points.js'
import { writeBackups } from './backup-chain.js'
import { seededChain } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM_A = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VM_B = '4fbd5b64-44bd-4ea5-a6d0-2b8f5e1fcf7d'
const DISK_1 = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const DISK_2 = '0b4e7a1c-5d6f-4a8b-9c0d-1e2f3a4b5c6d'
const SIZE = 8 * 1024 * 1024

describe('listRestorePoints', () => {
  let remote: TempRemote
  beforeEach(async () => {
    remote = await openTempRemote()
  })
  afterEach(async () => {
    await remote.close()
  })

  it('lists every VM and job oldest first, with disks, and filters by VM and job', async () => {
    const a = await writeBackups(remote.handler, VM_A, 'job-1', { [DISK_1]: seededChain(SIZE, 2, 1), [DISK_2]: seededChain(SIZE, 2, 2) }, { directory: false })
    const b = await writeBackups(remote.handler, VM_B, 'job-2', { [DISK_1]: seededChain(SIZE, 1, 3) }, { directory: true, start: new Date('2026-11-26T05:49:00Z') })
    const c = await writeBackups(remote.handler, VM_A, 'job-2', { [DISK_1]: seededChain(SIZE, 0, 4) }, { directory: false, start: new Date('2026-11-26T06:00:00Z') })
    // a listing cache, a lock folder and a foreign file are not restore points
    await remote.handler.outputFile(`xo-vm-backups/${VM_A}/cache.json.gz`, 'x')
    await remote.handler.mktree(`xo-vm-backups/${VM_A}.lock`)
    await remote.handler.outputFile('xo-vm-backups/README.txt', 'x')

    const all = await listRestorePoints(remote.handler)
    assert.deepEqual(all.map(p => p.id), [...b, ...a, ...c].map(p => p.metadata))
    const first = all.find(p => p.id === a[1]!.metadata)!
    assert.equal(first.vm, VM_A)
    assert.equal(first.vmName, 'vm1')
    assert.equal(first.jobId, 'job-1')
    assert.equal(first.timestamp, new Date('2026-11-26T05:50:01Z').getTime())
    assert.deepEqual(
      first.disks.map(d => [d.vdi, d.vhd, d.differencing]).sort(),
      [
        [DISK_1, a[1]!.vhds[DISK_1], true],
        [DISK_2, a[1]!.vhds[DISK_2], true],
      ].sort(),
    )
    assert.deepEqual((await listRestorePoints(remote.handler, { vm: VM_A })).map(p => p.id), [...a, ...c].map(p => p.metadata))
    assert.deepEqual((await listRestorePoints(remote.handler, { vm: VM_A, jobId: 'job-2' })).map(p => p.id), c.map(p => p.metadata))
    assert.deepEqual((await listRestorePoints(remote.handler, { jobId: 'job-2' })).map(p => p.id), [...b, ...c].map(p => p.metadata))
    await assert.rejects(listRestorePoints(remote.handler, { vm: '../etc' }), { code: 'UNSAFE_PATH' })
  })

  it('skips metadata it cannot read, and says which', async () => {
    const points = await writeBackups(remote.handler, VM_A, 'job-1', { [DISK_1]: seededChain(SIZE, 1, 1) }, { directory: false })
    await remote.handler.writeFile(points[0]!.metadata, 'garbage', { flags: 'w' })
    const invalid: string[] = []
    const listed = await listRestorePoints(remote.handler, {}, { onInvalid: path => invalid.push(path) })
    assert.deepEqual(listed.map(p => p.id), [points[1]!.metadata])
    assert.deepEqual(invalid, [points[0]!.metadata])
  })
})
