/**
 * Block checksums (src/repository/integrity/): what writeVhd records while the VHD streams in is
 * exactly what is on the remote; the sidecar format round-trips and refuses damage; which
 * checksums apply to a VHD when its sidecar is there, gone, foreign, or the VHD was rewritten by a
 * merge of its parent into it (as Xen Orchestra's merge does: child ∪ (parent ∖ child) under the
 * child's name).
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import {
  BlockChecksums,
  BlockChecksumsFormatError,
  checksumsOf,
  computeBlockChecksums,
  readRecordedIntegrity,
  readSidecar,
  readStructures,
  sidecarPath,
  type RecordedIntegrity,
} from '../../src/repository/integrity/index.js'
import { vhdPath } from '../../src/repository/layout.js'
import { vhdMerge } from '../../src/repository/vhd-lib.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { writeBackups } from './backup-chain.js'
import { exportStream, seededBlock, seededChain, type ExportSpec } from './exports.js'
import { flipFourBytesInFirstBlock } from './damage.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const DISK = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const JOB = 'job-1'
const SIZE = 16 * 1024 * 1024

function flipByteInFirstBlock(remote: TempRemote, vhd: string): Promise<void> {
  return flipFourBytesInFirstBlock(remote.root, remote.handler, vhd)
}

const none: RecordedIntegrity = { digests: new Map(), legacy: new Map() }

for (const directory of [false, true]) {
  describe(`block checksums (${directory ? 'VHD directories' : 'VHD files'})`, () => {
    let remote: TempRemote
    beforeEach(async () => {
      remote = await openTempRemote()
    })
    afterEach(async () => {
      await remote.close()
    })

    it('records, while the VHD streams in, the checksums of what is on the remote (blocks in or out of order)', async () => {
      for (const order of [undefined, [5, 1, 3]]) {
        const blocks = new Map([[1, seededBlock(1)], [3, seededBlock(3)], [5, seededBlock(5)]])
        const spec: ExportSpec = { virtualSize: SIZE, blocks, differencing: false, ...(order === undefined ? {} : { order }) }
        const path = vhdPath(VM, JOB, DISK, order === undefined ? '20261126T055010Z' : '20261126T055011Z', directory)
        const result = await writeVhd(remote.handler, path, exportStream(spec), { uuid: randomUUID() })
        const recomputed = await computeBlockChecksums(remote.handler, path)
        assert.equal(result.checksum, recomputed.digest)
        assert.deepEqual(result.blockChecksums.blockIds(), [1, 3, 5])
        assert.deepEqual(result.blockChecksums.structureMismatches((await readStructures(remote.handler, path)).structures), [])
        const sidecar = await readSidecar(remote.handler, path)
        assert.ok(sidecar.status === 'ok')
        assert.equal(sidecar.list.digest, result.checksum)
      }
    })

    it('a delta records its parent name and locator; the list round-trips and refuses a flipped byte', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 1, 3) }, { directory })
      const delta = points[1]!.vhds[DISK]!
      const list = (await computeBlockChecksums(remote.handler, delta))
      assert.equal(list.parent, points[0]!.vhds[DISK]!.split('/').pop())
      assert.notEqual(list.structures.locators[0], undefined)
      const raw = list.serialize()
      assert.equal(BlockChecksums.parse(raw).digest, list.digest)
      const damaged = Buffer.from(raw)
      damaged[400] = damaged[400]! ^ 1
      assert.throws(() => BlockChecksums.parse(damaged), BlockChecksumsFormatError)
      for (const id of list.blockIds()) assert.equal(list.forBlock(id)?.length, 32)
    })

    it('trusts a sidecar with the recorded digest; a missing one costs a recomputation checked against the digest', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 2, 4) }, { directory })
      const delta = points[1]!.vhds[DISK]!
      const recorded = await readRecordedIntegrity(remote.handler, VM)
      assert.equal(recorded.digests.get(delta), points[1]!.checksums[DISK])
      const first = await checksumsOf(remote.handler, delta, recorded)
      assert.equal(first.status === 'listed' && first.source, 'sidecar')

      await remote.handler.unlink(sidecarPath(delta))
      const again = await checksumsOf(remote.handler, delta, recorded, { repair: true })
      assert.equal(again.status === 'listed' && again.source, 'recomputed')
      assert.equal((await readSidecar(remote.handler, delta)).status, 'ok', 'repaired')

      // a sidecar that is not the recorded one (another VHD's) is not trusted: recomputed instead
      await remote.handler.writeFile(sidecarPath(delta), await remote.handler.readFile(sidecarPath(points[2]!.vhds[DISK]!)), { flags: 'w' })
      const foreign = await checksumsOf(remote.handler, delta, recorded)
      assert.equal(foreign.status === 'listed' && foreign.source, 'recomputed')
    })

    it('a flipped block with its sidecar gone: damaged (the list recomputed differs from the digest), never trusted', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 1, 5) }, { directory })
      const delta = points[1]!.vhds[DISK]!
      await flipByteInFirstBlock(remote, delta)
      const recorded = await readRecordedIntegrity(remote.handler, VM)
      // with its sidecar: the list is trusted, the block does not verify
      const listed = await checksumsOf(remote.handler, delta, recorded)
      assert.ok(listed.status === 'listed')
      const id = listed.list.blockIds()[0]!
      const stored = await computeBlockChecksums(remote.handler, delta)
      assert.ok(!stored.forBlock(id)!.equals(listed.list.forBlock(id)!))
      await remote.handler.unlink(sidecarPath(delta))
      const gone = await checksumsOf(remote.handler, delta, recorded)
      assert.equal(gone.status, 'damaged')
      assert.equal(await checksumsOf(remote.handler, delta, none).then(r => r.status), 'unrecorded')
    })

    it('a VHD rewritten by a merge of its parent into it (the parent gone, its sidecar kept) is recognised, its checksums rebuilt from both sidecars', async () => {
      const points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 2, 6) }, { directory })
      const [full, delta1, delta2] = points.map(p => p.vhds[DISK]!)
      const recorded = await readRecordedIntegrity(remote.handler, VM)
      const before = [await computeBlockChecksums(remote.handler, full!), await computeBlockChecksums(remote.handler, delta1!)]
      // vhd-lib's merge, as Xen Orchestra runs it: the parent merged into the child, under the child's name
      await vhdMerge.mergeVhdChain(remote.handler, [full!, delta1!], { removeUnused: true })
      assert.equal((await remote.handler.list(`xo-vm-backups/${VM}/vdis/${JOB}/${DISK}`)).some(n => n === full!.split('/').pop()), false)
      const merged = await checksumsOf(remote.handler, delta1!, recorded)
      assert.ok(merged.status === 'listed', JSON.stringify(merged))
      assert.equal(merged.source, 'merged')
      const actual = await computeBlockChecksums(remote.handler, delta1!)
      assert.deepEqual(merged.list.blockIds(), actual.blockIds())
      for (const id of actual.blockIds()) {
        assert.ok(merged.list.forBlock(id)!.equals(actual.forBlock(id)!), `block ${id}`)
        const origin = before[1]!.hasBlock(id) ? before[1]! : before[0]!
        assert.ok(merged.list.forBlock(id)!.equals(origin.forBlock(id)!), `block ${id} from its origin`)
      }
      // the newest delta is untouched
      const newest = await checksumsOf(remote.handler, delta2!, recorded)
      assert.equal(newest.status === 'listed' && newest.source, 'sidecar')
    })
  })
}
