import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { chainOf, listDiskVhds, newestVhd, readVhdInfo } from '../../src/repository/chain.js'
import { checkBlocks, checksumsOf, computeBlockChecksums, readRecordedIntegrity } from '../../src/repository/integrity/index.js'
import { diskDir, vhdPath } from '../../src/repository/layout.js'
import { readMetadata } from '../../src/repository/metadata.js'
import { enforceRetention, planDisk } from '../../src/repository/retention.js'
import { listRestorePoints } from '../../src/repository/restore-points.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { writeBackups } from './backup-chain.js'
import { flipFourBytesInBlock } from './damage.js'
import { exportStream, expectedDiskHash, hashStream, seededChain } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'
import type { VhdInfo } from '../../src/repository/chain.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { VhdAbstract } from '../../src/repository/vhd-lib.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const DISK_A = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const DISK_B = '0b4e7a1c-5d6f-4a8b-9c0d-1e2f3a4b5c6d'
const JOB = 'job-1'
const SIZE = 16 * 1024 * 1024

async function rawHash(remote: TempRemote, path: string): Promise<string> {
  return (await hashStream((await openChainRawStream(remote.handler, path)).stream)).sha256
}

describe('retention: plan', () => {
  const info = (path: string, parent?: string): VhdInfo => ({
    path,
    uuid: randomUUID(),
    diskType: parent === undefined ? 3 : 4,
    virtualSize: SIZE,
    ...(parent === undefined ? {} : { parent: { path: parent, uuid: randomUUID() } }),
  })

  it('merges the unreferenced head of a chain into the oldest referenced VHD and deletes dangling ones', () => {
    const [a, b, c, d, e] = ['d/1.vhd', 'd/2.vhd', 'd/3.vhd', 'd/4.vhd', 'd/5.vhd']
    const infos = new Map([a, b, c, d, e].map((p, i, all) => [p, info(p!, i === 0 ? undefined : all[i - 1])]))
    const referenced = new Set([c, d])
    const plan = planDisk([a!, b!, c!, d!, e!], infos, p => referenced.has(p))
    assert.deepEqual(plan.merges, [[a, b, c]])
    assert.deepEqual(plan.deletions, [e])
  })

  it('merges unreferenced deltas between two referenced VHDs into the next referenced one (a restore point deleted between two others)', () => {
    const [a, b, c, d, e, f] = ['d/1.vhd', 'd/2.vhd', 'd/3.vhd', 'd/4.vhd', 'd/5.vhd', 'd/6.vhd']
    const infos = new Map([a, b, c, d, e, f].map((p, i, all) => [p, info(p!, i === 0 ? undefined : all[i - 1])]))
    // 1 and 4 referenced; 2, 3 between them; 5 below 4 and above the referenced 6
    const referenced = new Set([a, d, f])
    const plan = planDisk([a!, b!, c!, d!, e!, f!], infos, p => referenced.has(p))
    assert.deepEqual(plan.merges, [[b, c, d], [e, f]])
    assert.deepEqual(plan.deletions, [])
    // a delta whose parent is missing starts no merge
    const orphan = new Map([[b!, info(b!, a)], [c!, info(c!, b)]])
    assert.deepEqual(planDisk([b!, c!], orphan, p => p === c).merges, [])
  })

  it('deletes a chain nothing references, newest first, and keeps an unreadable referenced VHD', () => {
    const [a, b, c] = ['d/1.vhd', 'd/2.vhd', 'd/3.vhd']
    const infos = new Map<string, VhdInfo | undefined>([[a!, info(a!)], [b!, info(b!, a)], [c!, undefined]])
    const plan = planDisk([a!, b!, c!], infos, p => p === c)
    assert.deepEqual(plan.merges, [])
    assert.deepEqual(plan.deletions, [b, a])
  })
})

for (const directory of [false, true]) {
  describe(`retention on a remote (${directory ? 'VHD directories' : 'VHD files'})`, () => {
    let remote: TempRemote
    beforeEach(async () => {
      remote = await openTempRemote()
    })
    afterEach(async () => {
      await remote.close()
    })

    it('keeps N restore points: merges the oldest into a full, restores stay byte-exact, then does nothing', async () => {
      const chains = { [DISK_A]: seededChain(SIZE, 4, 1), [DISK_B]: seededChain(SIZE, 4, 2) }
      const points = await writeBackups(remote.handler, VM, JOB, chains, { directory })
      const merged: string[] = []
      const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2, onMerge: r => merged.push(r.vdi) })

      assert.deepEqual(result.removed, points.slice(0, 3).map(p => p.metadata))
      assert.deepEqual(result.merges.map(m => m.vdi).sort(), [DISK_A, DISK_B].sort())
      assert.deepEqual(merged.sort(), [DISK_A, DISK_B].sort())
      const kept = await listRestorePoints(remote.handler, { vm: VM })
      assert.deepEqual(kept.map(p => p.id), points.slice(3).map(p => p.metadata))

      for (const [vdi, chain] of Object.entries(chains)) {
        // the oldest kept restore point is the new full, under its own name
        assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, vdi)), [points[3]!.vhds[vdi], points[4]!.vhds[vdi]])
        assert.equal((await readVhdInfo(remote.handler, points[3]!.vhds[vdi]!)).diskType, 3)
        assert.deepEqual(await chainOf(remote.handler, points[4]!.vhds[vdi]!), [points[3]!.vhds[vdi], points[4]!.vhds[vdi]])
        assert.equal(await rawHash(remote, points[3]!.vhds[vdi]!), expectedDiskHash(SIZE, chain.slice(0, 4)))
        assert.equal(await rawHash(remote, points[4]!.vhds[vdi]!), expectedDiskHash(SIZE, chain))
      }
      // the merged VHD is marked full and still has block checksums every block of it verifies against; the delta's are intact
      const oldest = await readMetadata(remote.handler, points[3]!.metadata)
      assert.deepEqual(Object.values(oldest.isVhdDifferencing), [false, false])
      const newest = await readMetadata(remote.handler, points[4]!.metadata)
      assert.equal(Object.keys(newest.continuousDelta?.blockChecksums ?? {}).length, 2)
      const recorded = await readRecordedIntegrity(remote.handler, VM)
      for (const vdi of [DISK_A, DISK_B]) {
        for (const vhd of [points[3]!.vhds[vdi]!, points[4]!.vhds[vdi]!]) {
          const integrity = await checksumsOf(remote.handler, vhd, recorded)
          assert.equal(integrity.status, 'listed', `${vhd}: ${JSON.stringify(integrity)}`)
          if (integrity.status !== 'listed') continue
          const check = await checkBlocks(remote.handler, vhd, integrity.list, { kind: 'all' })
          assert.deepEqual(check.damaged, [])
          assert.equal(check.blocksRead, integrity.list.blockCount)
        }
        assert.equal((await computeBlockChecksums(remote.handler, points[4]!.vhds[vdi]!)).digest, points[4]!.checksums[vdi])
      }

      const again = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.deepEqual(again, { removed: [], merges: [], resumed: 0, deleted: [], deferred: [], unmerged: [], unrestorable: [], foreign: [] })
    })

    it('finishes the work of a call interrupted after the metadata was removed', async () => {
      const chains = { [DISK_A]: seededChain(SIZE, 3, 3) }
      const points = await writeBackups(remote.handler, VM, JOB, chains, { directory })
      // as if a previous call removed the two oldest .json and then crashed
      await remote.handler.unlink(points[0]!.metadata)
      await remote.handler.unlink(points[1]!.metadata)
      const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.deepEqual(result.removed, [])
      assert.equal(result.merges.length, 1)
      assert.equal(result.merges[0]!.mergedPath, points[2]!.vhds[DISK_A])
      assert.equal(await rawHash(remote, points[3]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chains[DISK_A]!))
    })

    it('deletes VHDs no restore point needs and leftovers of interrupted writes', async () => {
      const chains = { [DISK_A]: seededChain(SIZE, 2, 4) }
      const points = await writeBackups(remote.handler, VM, JOB, chains, { directory })
      // a delta written by a run that failed before its metadata was committed
      const orphan = vhdPath(VM, JOB, DISK_A, '20261126T060000Z', directory)
      await writeVhd(remote.handler, orphan, exportStream(seededChain(SIZE, 1, 9)[1]!), { uuid: randomUUID(), parent: points[2]!.vhds[DISK_A]! })
      const dir = join(remote.root, diskDir(VM, JOB, DISK_A))
      await remote.handler.writeFile(`${diskDir(VM, JOB, DISK_A)}/.1764136200000.20261126T060001Z.vhd`, 'partial')
      await remote.handler.outputFile(`${diskDir(VM, JOB, DISK_A)}/data/20261126T060002Z.vhd/header`, 'partial')

      const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 3 })
      assert.deepEqual(result.removed, [])
      assert.deepEqual(result.merges, [])
      assert.ok(result.deleted.includes(orphan))
      const names = (await readdir(dir)).filter(n => n !== 'data' && !n.endsWith('.checksums')).sort()
      // the deleted VHD's sidecar went with it
      assert.deepEqual((await readdir(dir)).filter(n => n.endsWith('.checksums')).sort(), points.map(p => `${p.vhds[DISK_A]!.split('/').pop()}.checksums`).sort())
      assert.deepEqual(names, points.map(p => p.vhds[DISK_A]!.split('/').pop()).sort())
      if (directory) {
        assert.deepEqual((await readdir(join(dir, 'data'))).sort(), points.map(p => p.vhds[DISK_A]!.split('/').pop()!.replace('.alias', '')).sort())
      } else {
        assert.deepEqual(await readdir(join(dir, 'data')), [])
      }
      assert.equal(await rawHash(remote, points[2]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chains[DISK_A]!))
    })

    it('a restore point whose metadata cannot be read is not counted nor deleted; its VHDs go only once it is older than every point kept', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK_A]: seededChain(SIZE, 2, 5) }, { directory })
      await remote.handler.writeFile(points[1]!.metadata, '{ not json', { flags: 'w' })
      const unrestorable = [{ path: points[1]!.metadata, reason: `metadata is not valid JSON (truncated or overwritten): ${jsonError('{ not json')}` }]
      // two restorable restore points: retention 2 keeps both, and every VHD
      const two = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.deepEqual([two.removed, two.unrestorable], [[], unrestorable])
      assert.equal((await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A))).length, 3)
      // retention 1: the oldest goes, the damaged one is older than the one kept: merged into it, its file left
      const one = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 1 })
      assert.deepEqual([one.removed, one.unrestorable], [[points[0]!.metadata], unrestorable])
      assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A)), [points[2]!.vhds[DISK_A]])
      assert.equal((await remote.handler.readFile(points[1]!.metadata)).toString(), '{ not json')
    })

    it('a pass with nothing past retention opens no VHD, and still sees a missing VHD and a missing parent', async () => {
      const chains = { [DISK_A]: seededChain(SIZE, 4, 12), [DISK_B]: seededChain(SIZE, 4, 13) }
      const points = await writeBackups(remote.handler, VM, JOB, chains, { directory })
      const opened: string[] = []
      const counting = new Proxy(remote.handler, {
        get(target, key) {
          const value = Reflect.get(target, key) as unknown
          if (typeof value !== 'function') return value
          const method = (value as (...args: unknown[]) => Promise<unknown>).bind(target)
          if (key !== 'openFile' && key !== 'readFile' && key !== 'createReadStream') return method
          return (file: unknown, ...rest: unknown[]) => {
            const path = typeof file === 'string' ? file : (file as { path: string }).path
            if (!path.endsWith('.json')) opened.push(path)
            return method(file, ...rest)
          }
        },
      }) as typeof remote.handler
      const none = await enforceRetention(counting, { vm: VM, jobId: JOB, keep: 5 })
      assert.deepEqual([none.removed, none.merges, none.deleted, none.unrestorable], [[], [], [], []])
      assert.deepEqual(opened, [])

      // delta 2 of disk B gone: restore points 2 to 4 cannot be restored; its metadata still names it
      await VhdAbstract.unlink(remote.handler, points[2]!.vhds[DISK_B]!)
      const broken = await enforceRetention(counting, { vm: VM, jobId: JOB, keep: 5 })
      assert.deepEqual(broken.removed, [])
      assert.deepEqual(broken.unrestorable.map(u => u.path), points.slice(2).map(p => p.metadata))
      assert.ok(broken.unrestorable.every(u => u.reason.includes(`${points[2]!.vhds[DISK_B]} is missing`)), JSON.stringify(broken.unrestorable))
      // retention 1: the chains counted are read first; restore point 0 goes, 1 is kept and restores
      const two = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 1 })
      assert.deepEqual(two.removed, [points[0]!.metadata])
      assert.equal(await rawHash(remote, points[1]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chains[DISK_A]!.slice(0, 2)))
    })

    it('a restore point whose data damage a merge recorded is not counted, not deleted, not merged into; no good one goes early', async () => {
      // seededChain: delta d writes blocks d % 8 and (3d + 1) % 8; delta 4 writes block 4 again
      const chain = seededChain(SIZE, 5, 11)
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK_A]: chain }, { directory })
      const v1 = points[1]!.vhds[DISK_A]!
      // block 4 of delta 1 damaged: restore points 1 to 3 read it, 4 and 5 read delta 4's
      await flipFourBytesInBlock(remote.root, remote.handler, v1, 4)

      // the merge of the full into delta 1 finds the damage: refused, recorded in points 1 to 3
      const first = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 5 })
      assert.deepEqual(first.removed, [points[0]!.metadata])
      assert.deepEqual(first.damagedData?.map(d => d.restorePoints), [points.slice(1, 4).map(p => p.metadata)])
      const damaged = points.slice(1, 4).map(p => p.metadata)
      for (const path of damaged) assert.equal((await readMetadata(remote.handler, path)).continuousDelta?.damaged?.length, 1, path)

      // retention 3: two restorable restore points (4, 5); the three damaged ones are neither
      // counted nor deleted, and their chain stays as it is (no merge is tried again)
      const vhdsBefore = await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A))
      const second = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 3 })
      assert.deepEqual([second.removed, second.merges, second.deleted], [[], [], []])
      assert.deepEqual(second.unrestorable.map(u => u.path), damaged)
      for (const u of second.unrestorable) assert.ok(u.reason.includes(v1.split('/').slice(2).join('/')) && u.reason.includes('block 4'), u.reason)
      assert.equal(second.damagedData, undefined)
      assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A)), vhdsBefore)
      assert.deepEqual((await listRestorePoints(remote.handler, { vm: VM })).map(p => p.id), points.slice(1).map(p => p.metadata))
      for (const i of [4, 5]) assert.equal(await rawHash(remote, points[i]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chain.slice(0, i + 1)), `point ${i}`)

      // deleted on request, the damaged points go and their VHDs are merged past: the damaged block is not read
      const dropped = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 3, drop: damaged })
      assert.deepEqual(dropped.removed, damaged)
      assert.equal(dropped.damagedData, undefined)
      assert.equal(dropped.merges.length, 1)
      assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A)), [points[4]!.vhds[DISK_A], points[5]!.vhds[DISK_A]])
      for (const i of [4, 5]) assert.equal(await rawHash(remote, points[i]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chain.slice(0, i + 1)), `point ${i} after the merge`)
    })
  })
}

function jsonError(text: string): string {
  try {
    JSON.parse(text)
  } catch (error) {
    return (error as Error).message
  }
  return ''
}

describe('retention of a chain mixing VHD files and VHD directories (written by earlier versions)', () => {
  it('is not merged, fails nothing, keeps every kept restore point byte-exact, and goes once nothing kept needs it', async () => {
    const remote = await openTempRemote()
    try {
      const chain = seededChain(SIZE, 3, 9)
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK_A]: chain }, { directory: i => i >= 2 })
      const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.deepEqual(result.removed, points.slice(0, 2).map(p => p.metadata))
      assert.deepEqual(result.merges, [])
      assert.equal(result.unmerged.length, 1)
      assert.match(result.unmerged[0]!.message, /mix VHD files and VHD directories and are not merged/)
      for (const i of [2, 3]) assert.equal(await rawHash(remote, points[i]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chain.slice(0, i + 1)), `point ${i}`)
      // no delta is built on it: the next run is a full
      const unusable: string[] = []
      assert.equal(await newestVhd(remote.handler, VM, JOB, DISK_A, { onUnusable: problem => unusable.push(problem.reason) }), undefined)
      assert.match(unusable.join(), /mixes VHD files and VHD directories/)
      // a new chain (a full in the new format) and two restore points on it: the mixed chain is deleted
      const fresh = await writeBackups(remote.handler, VM, JOB, { [DISK_A]: seededChain(SIZE, 1, 10) }, { directory: true, start: new Date('2026-11-26T06:00:00Z') })
      const after = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
      assert.deepEqual(after.unmerged, [])
      assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A)), fresh.map(p => p.vhds[DISK_A]))
    } finally {
      await remote.close()
    }
  })
})

describe('retention after a crash in the middle of a merge', () => {
  for (const directory of [false, true]) {
    it(`finishes the interrupted merge and the rest of the work (${directory ? 'VHD directories' : 'VHD files'})`, async () => {
      const remote = await openTempRemote()
      try {
        const chains = { [DISK_A]: seededChain(SIZE, 4, 6) }
        const points = await writeBackups(remote.handler, VM, JOB, chains, { directory })
        // the remote fails once the merge has saved its state and moved a block or two
        let armed = false
        let calls = 0
        const failing = new Proxy(remote.handler, {
          get(target, key) {
            const value = Reflect.get(target, key) as unknown
            if (typeof value !== 'function') return value
            const method = (value as (...args: unknown[]) => Promise<unknown>).bind(target)
            if (key === 'rename' || key === 'write') {
              return async (...args: unknown[]) => {
                if (armed && ++calls > 2) throw Object.assign(new Error('remote connection lost'), { code: 'ECONNRESET' })
                const result = await method(...args)
                if (key === 'rename' && String(args[1]).endsWith('.cd-merge.json')) armed = true
                return result
              }
            }
            return method
          },
        }) as typeof remote.handler
        await assert.rejects(enforceRetention(failing, { vm: VM, jobId: JOB, keep: 2 }), /remote connection lost/)
        assert.ok(armed, 'the merge saved its state before failing')

        const result = await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 })
        assert.equal(result.merges.length >= 1, true)
        assert.deepEqual(await listDiskVhds(remote.handler, diskDir(VM, JOB, DISK_A)), [points[3]!.vhds[DISK_A], points[4]!.vhds[DISK_A]])
        assert.equal(await rawHash(remote, points[3]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chains[DISK_A]!.slice(0, 4)))
        assert.equal(await rawHash(remote, points[4]!.vhds[DISK_A]!), expectedDiskHash(SIZE, chains[DISK_A]!))
        const report = await verifyRemote(remote.handler)
        assert.deepEqual([report.ok, report.problems], [true, []])
        assert.deepEqual(await enforceRetention(remote.handler, { vm: VM, jobId: JOB, keep: 2 }), { removed: [], merges: [], resumed: 0, deleted: [], deferred: [], unmerged: [], unrestorable: [], foreign: [] })
      } finally {
        await remote.close()
      }
    })
  }
})
