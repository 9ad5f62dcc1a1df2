/**
 * The repository core end to end on every kind of remote (local files, local VHD directories,
 * S3): write restore points, list them, read them back, enforce retention, verify.
 */
import assert from 'node:assert/strict'
import { enforceRetention } from '../../src/repository/retention.js'
import { listRestorePoints } from '../../src/repository/restore-points.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { withChainLock } from '../../src/repository/lock.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { describeEachRemote } from '../helpers/remotes.js'
import { writeBackups } from './backup-chain.js'
import { expectedDiskHash, hashStream, seededChain } from './exports.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const DISK = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 8 * 1024 * 1024

describeEachRemote('repository core', remote => {
  it('writes, lists, reads back, merges past retention and verifies clean', async () => {
    const { handler, vhdDirectory } = remote()
    const chain = seededChain(SIZE, 3, 21)
    const points = await withChainLock(handler, VM, () => writeBackups(handler, VM, 'job-1', { [DISK]: chain }, { directory: vhdDirectory }))
    assert.ok(points.every(p => p.vhds[DISK]!.endsWith(vhdDirectory ? '.alias.vhd' : '.vhd')))
    assert.deepEqual((await listRestorePoints(handler, { vm: VM })).map(p => p.id), points.map(p => p.metadata))
    for (let i = 0; i < points.length; i++) {
      const raw = await openChainRawStream(handler, points[i]!.vhds[DISK]!)
      assert.equal((await hashStream(raw.stream)).sha256, expectedDiskHash(SIZE, chain.slice(0, i + 1)), `restore point ${i}`)
    }
    const retained = await withChainLock(handler, VM, () => enforceRetention(handler, { vm: VM, jobId: 'job-1', keep: 2 }))
    assert.deepEqual(retained.removed, points.slice(0, 2).map(p => p.metadata))
    assert.equal(retained.merges.length, 1)
    for (const i of [2, 3]) {
      const raw = await openChainRawStream(handler, points[i]!.vhds[DISK]!)
      assert.equal((await hashStream(raw.stream)).sha256, expectedDiskHash(SIZE, chain.slice(0, i + 1)), `restore point ${i} after the merge`)
    }
    const report = await verifyRemote(handler)
    assert.deepEqual([report.ok, report.problems, report.restorePoints.map(p => p.problems)], [true, [], [[], []]])
  })
})
