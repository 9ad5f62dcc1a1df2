/**
 * A merge checks every block it folds in against its VHD's recorded checksums and carries the
 * checksums into the merged full: the merged VHD's sidecar is the list one would compute by
 * reading it (complete and correct), its digest is in the restore point's metadata, the sidecars
 * of the VHDs merged away are gone, and `verify` is clean. The parent's blocks the children do not
 * change are not read. A damaged block refuses the merge before anything changes.
 */
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { computeBlockChecksums, readSidecar, writeSidecar } from '../../src/repository/integrity/index.js'
import { diskDir, relativeToVmDir } from '../../src/repository/layout.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { isMergeRefused, mergeChain } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { enforceRetention } from '../../src/repository/retention.js'
import { resolveVhdAlias } from '../../src/repository/vhd-lib.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { createVhdChain, hashRestorePoint, MiB } from '../helpers/vhd-fixtures.js'
import { writeBackups } from './backup-chain.js'
import { flipFourBytesInFirstBlock } from './damage.js'
import { seededChain } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '4f3c2b1a-0d9e-4f8a-b7c6-d5e4f3a2b1c0'
const DISK = '8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d'
const JOB = 'job-1'
const SIZE = 16 * 1024 * 1024

/** a handler that counts the bytes read from files under `prefix` */
function countingReads(handler: RemoteHandler, prefix: () => string): { handler: RemoteHandler; bytes: () => number } {
  let bytes = 0
  const pathOf = (file: unknown): string => String(typeof file === 'object' && file !== null && 'path' in file ? (file as { path: string }).path : file).replace(/^\/+/, '')
  const proxy = new Proxy(handler, {
    get(target, key) {
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function') return value
      const method = (value as (...args: unknown[]) => Promise<unknown>).bind(target)
      if (key === 'read') {
        return async (...args: unknown[]) => {
          const result = (await method(...args)) as { bytesRead: number }
          if (pathOf(args[0]).startsWith(prefix())) bytes += result.bytesRead
          return result
        }
      }
      if (key === 'readFile') {
        return async (...args: unknown[]) => {
          const result = (await method(...args)) as Buffer
          if (pathOf(args[0]).startsWith(prefix()) && !pathOf(args[0]).endsWith('.checksums')) bytes += result.length
          return result
        }
      }
      return method
    },
  }) as RemoteHandler
  return { handler: proxy, bytes: () => bytes }
}

async function listing(remote: TempRemote, dir: string): Promise<string[]> {
  const out: string[] = []
  const walk = async (relative: string) => {
    for (const entry of await readdir(join(remote.root, relative), { withFileTypes: true })) {
      const path = `${relative}/${entry.name}`
      if (entry.isDirectory()) await walk(path)
      else out.push(path)
    }
  }
  await walk(dir)
  return out.sort()
}

for (const directory of [false, true]) {
  describe(`merge with block checksums (${directory ? 'VHD directories' : 'VHD files'})`, function () {
    this.timeout(120_000)
    let remote: TempRemote
    beforeEach(async () => {
      remote = await openTempRemote()
    })
    afterEach(async () => {
      await remote.close()
    })

    it('the merged full gets the complete, correct list: its sidecar, its digest in the metadata; verify is clean', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 4, 11) }, { directory })
      const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.equal(result.merges.length, 1)
      const merged = points[3]!.vhds[DISK]!
      const sidecar = await readSidecar(remote.handler, merged)
      assert.ok(sidecar.status === 'ok')
      // the list read from the merged VHD is the one the merge carried
      assert.equal((await computeBlockChecksums(remote.handler, merged)).digest, sidecar.list.digest)
      assert.equal(sidecar.list.parent, '')
      const metadata = await readMetadata(remote.handler, points[3]!.metadata)
      assert.equal(metadata.continuousDelta?.blockChecksums?.[relativeToVmDir(VM, merged)], sidecar.list.digest)
      // the sidecars of the VHDs merged away are gone
      const names = (await readdir(join(remote.root, diskDir(VM, JOB, DISK)))).filter(name => name.endsWith('.checksums')).sort()
      assert.deepEqual(names, [merged, points[4]!.vhds[DISK]!].map(path => `${path.split('/').pop()}.checksums`).sort())
      const report = await verifyRemote(remote.handler)
      assert.equal(report.ok, true)
      assert.deepEqual(report.problems, [])
      assert.deepEqual(report.restorePoints.flatMap(point => point.problems), [])
    })

    it('blocks held in part are composed and their new sha256 carried; the parent\'s unchanged blocks are not read', async () => {
      const dir = `xo-vm-backups/${VM}/vdis/${JOB}/${DISK}`
      const chain = await createVhdChain(remote.handler, {
        dir,
        directory,
        virtualSize: 16 * MiB,
        seed: 5,
        layers: [[0, 1, 2, 3, 4, 5, 6, 7], [1, { index: 2, sectors: [[0, 64], [1000, 1100]] }], [{ index: 3, sectors: [[10, 20]] }, 4]],
      })
      for (const path of chain.paths) await writeSidecar(remote.handler, path, await computeBlockChecksums(remote.handler, path))
      const parentData = directory ? (await resolveVhdAlias(remote.handler, chain.paths[0]!)).replace(/^\/+/, '') + '/blocks' : chain.paths[0]!
      const counting = countingReads(remote.handler, () => parentData)
      await mergeChain(counting.handler, chain.paths)
      // the two blocks composed (2, 3) read from the parent, by the check and by the copy; none of
      // the four it keeps unchanged (0, 5, 6, 7)
      assert.ok(counting.bytes() <= 2 * 2 * (2 * MiB + 512) + 64 * 1024, `${counting.bytes()} bytes read from the parent's blocks`)
      const merged = chain.paths[2]!
      const sidecar = await readSidecar(remote.handler, merged)
      assert.ok(sidecar.status === 'ok')
      assert.equal((await computeBlockChecksums(remote.handler, merged)).digest, sidecar.list.digest)
      assert.equal(await hashRestorePoint(remote.handler, merged), chain.hashes[2])
      for (const path of chain.paths.slice(0, 2)) assert.equal((await readSidecar(remote.handler, path)).status, 'missing')
    })

    it('a damaged block of the child refuses the merge, naming it, before anything changes', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 2, 12) }, { directory })
      const chain = points.map(point => point.vhds[DISK]!)
      await flipFourBytesInFirstBlock(remote.root, remote.handler, chain[1]!)
      const before = await listing(remote, 'xo-vm-backups')
      const hashes = await Promise.all(chain.map(path => hashRestorePoint(remote.handler, path)))
      const error = await mergeChain(remote.handler, chain.slice(0, 2)).then(
        () => assert.fail('the merge went on'),
        (e: unknown) => e,
      )
      assert.ok(isMergeRefused(error), String(error))
      assert.equal(error.code, 'DATA_DAMAGED')
      assert.match(error.message, new RegExp(`block \\d+ of ${chain[1]!.replace(/\./g, '\\.')}`))
      assert.deepEqual(error.context.damage.map(d => d.vhd), [chain[1]])
      // no state file, no merged list, the chain as it was: every restore point reads as before
      assert.deepEqual(await listing(remote, 'xo-vm-backups'), before)
      assert.deepEqual(await Promise.all(chain.map(path => hashRestorePoint(remote.handler, path))), hashes)
      for (const path of chain) assert.equal((await readSidecar(remote.handler, path)).status, 'ok')
    })
  })
}
