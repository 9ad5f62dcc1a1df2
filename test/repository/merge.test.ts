import assert from 'node:assert/strict'
import { BackupError } from '../../src/errors.js'
import { mergeChain, resumeMerges } from '../../src/repository/merge/index.js'
import { isMergeStateName } from '../../src/repository/merge/state.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { BLOCK_UNUSED, vhdLib, vhdMerge } from '../../src/repository/vhd-lib.js'
import { appendLayer, createVhdChain, hashRestorePoint, MiB } from '../helpers/vhd-fixtures.js'
import { assertMerged, DISK_DIR, openLocalRemote, type LocalRemote } from './merge-helpers.js'

for (const directory of [false, true]) {
  describe(`mergeChain — VHD ${directory ? 'directories' : 'files'}`, () => {
    let remote: LocalRemote
    let handler: RemoteHandler
    beforeEach(async () => {
      remote = await openLocalRemote()
      handler = remote.handler
    })
    afterEach(() => remote.close())

    it('merges one delta: overlapping and new blocks, newest block winning', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 32 * MiB,
        layers: [
          [0, 2, 3, 9],
          [2, 4, 9, 15],
          [3, 4],
        ],
      })
      const progress: [number, number][] = []
      const result = await mergeChain(handler, chain.paths.slice(0, 2), { onProgress: (done, total) => progress.push([done, total]) })
      assert.equal(result.mergedPath, chain.paths[1])
      assert.equal(result.blocks, 4)
      assert.deepEqual(progress[progress.length - 1], [4, 4])
      await assertMerged(handler, chain, 1)
    })

    it('merges several deltas in one pass over the union of their blocks', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 32 * MiB,
        seed: 7,
        layers: [[0, 1, 2, 3, 4, 5], [1, 6], [1, 2, 7], [2, 8, 15], [0]],
      })
      const result = await mergeChain(handler, chain.paths.slice(0, 4))
      assert.equal(result.mergedPath, chain.paths[3])
      assert.equal(result.blocks, 6) // 1, 2, 6, 7, 8, 15
      await assertMerged(handler, chain, 3)
    })

    it('merges partial sector bitmaps sector by sector', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 16 * MiB,
        seed: 3,
        layers: [
          [0, 1, 2],
          [{ index: 0, sectors: [[0, 8], [100, 4096]] }, { index: 5, sectors: [[7, 9]] }, 2],
          [{ index: 0, sectors: [[4, 200]] }, { index: 1, sectors: [[4095, 4096]] }, { index: 5, sectors: [[0, 1]] }],
          [{ index: 2, sectors: [[10, 20]] }],
        ],
      })
      await mergeChain(handler, chain.paths.slice(0, 3))
      await assertMerged(handler, chain, 2)
    })

    it('lets the chain continue after the merged full', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 16 * MiB,
        seed: 11,
        layers: [[0, 1], [1, 2], [2, 3]],
      })
      await mergeChain(handler, chain.paths.slice(0, 2))
      await appendLayer(handler, chain, [3, 4, 7])
      await assertMerged(handler, chain, 1)
      await mergeChain(handler, chain.paths.slice(1, 4))
      await assertMerged(handler, chain, 3)
    })

    it('leaves a full that vhd-lib’s own merge (as Xen Orchestra runs it) continues from', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 250 * MiB,
        sizes: [250 * MiB, 300 * MiB, 300 * MiB],
        seed: 17,
        layers: [[0, 1, 124], [3, 124, 149]],
      })
      await mergeChain(handler, chain.paths)
      await appendLayer(handler, chain, [0, 5, 149, 140])
      await vhdMerge.mergeVhdChain(handler, chain.paths.slice(1), { removeUnused: true })
      await assertMerged(handler, chain, 2)
    })

    it('grows the BAT when the kept restore point is a larger disk', async () => {
      // 250 MiB fits in one BAT sector (128 entries); 300 MiB needs a second one
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 250 * MiB,
        sizes: [250 * MiB, 300 * MiB, 300 * MiB],
        seed: 5,
        layers: [[0, 1, 124], [3, 124, 140, 149], [149]],
      })
      await mergeChain(handler, chain.paths.slice(0, 2))
      await assertMerged(handler, chain, 1)
    })

    it('can be cancelled and resumed from its state file', async () => {
      const chain = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 64 * MiB,
        seed: 13,
        layers: [[0, 1, 2, 3], Array.from({ length: 24 }, (_, i) => i + 2), [30]],
      })
      const controller = new AbortController()
      await assert.rejects(
        mergeChain(handler, chain.paths.slice(0, 2), {
          signal: controller.signal,
          onProgress: done => {
            if (done > 0) {
              controller.abort()
            }
          },
        }),
        (error: unknown) => error instanceof BackupError && error.code === 'CANCELLED',
      )
      const states = (await handler.list(DISK_DIR)).filter(isMergeStateName)
      assert.equal(states.length, 1)
      // the kept restore points read right while the merge is pending (VHD files)
      if (!directory) {
        for (let i = 1; i < chain.paths.length; i++) {
          assert.equal(await hashRestorePoint(handler, chain.paths[i]!), chain.hashes[i])
        }
      }
      const results = await resumeMerges(handler, DISK_DIR)
      assert.deepEqual(
        results.map(r => [r.mergedPath, r.blocks]),
        [[chain.paths[1], 24]],
      )
      await assertMerged(handler, chain, 1)
      assert.deepEqual(await resumeMerges(handler, DISK_DIR), [])
    })

    it('refuses a chain whose links do not match', async () => {
      const a = await createVhdChain(handler, { dir: DISK_DIR, directory, virtualSize: 8 * MiB, seed: 1, layers: [[0], [1]] })
      const b = await createVhdChain(handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 8 * MiB,
        seed: 2,
        layers: [[0], [1]],
        names: ['20260102T000000Z', '20260102T000001Z'],
      })
      await assert.rejects(
        mergeChain(handler, [a.paths[0]!, b.paths[1]!]),
        (error: unknown) => error instanceof BackupError && error.code === 'CHAIN_BROKEN',
      )
      assert.equal(await hashRestorePoint(handler, a.paths[1]!), a.hashes[1])
      assert.equal(await hashRestorePoint(handler, b.paths[1]!), b.hashes[1])
    })
  })
}

describe('mergeChain — VHD file layout', () => {
  let remote: LocalRemote
  beforeEach(async () => {
    remote = await openLocalRemote()
  })
  afterEach(() => remote.close())

  async function readLayout(handler: RemoteHandler, path: string): Promise<{ tableOffset: number; entries: number[] }> {
    const { value: vhd, dispose } = await vhdLib.VhdFile.open(handler, path, { flags: 'r' })
    try {
      const bat = Buffer.alloc(vhd.header.maxTableEntries * 4)
      await handler.read(path, bat, vhd.header.tableOffset)
      const entries: number[] = []
      for (let i = 0; i < vhd.header.maxTableEntries; i++) {
        entries.push(bat.readUInt32BE(i * 4))
      }
      return { tableOffset: vhd.header.tableOffset, entries }
    } finally {
      await dispose()
    }
  }

  it('rewrites only the changed blocks of the full, in place, and appends new ones', async () => {
    const { handler } = remote
    const chain = await createVhdChain(handler, { dir: DISK_DIR, virtualSize: 64 * MiB, seed: 21, layers: [[0, 5, 9], [5, 20]] })
    const before = await readLayout(handler, chain.paths[0]!)
    await mergeChain(handler, chain.paths)
    const after = await readLayout(handler, chain.paths[1]!)
    // existing blocks stay where they were; the new one goes behind them
    for (const block of [0, 5, 9]) {
      assert.equal(after.entries[block], before.entries[block])
    }
    const lastSector = Math.max(...[0, 5, 9].map(b => before.entries[b]!))
    assert.ok(after.entries[20]! > lastSector && after.entries[20] !== BLOCK_UNUSED)
    assert.equal(after.tableOffset, before.tableOffset)
    await assertMerged(handler, chain, 1)
  })

  it('grows the BAT in place when its sector has room', async () => {
    const { handler } = remote
    const chain = await createVhdChain(handler, {
      dir: DISK_DIR,
      virtualSize: 200 * MiB,
      sizes: [200 * MiB, 240 * MiB],
      seed: 23,
      layers: [[0, 1], [1, 110]],
    })
    const before = await readLayout(handler, chain.paths[0]!)
    await mergeChain(handler, chain.paths)
    const after = await readLayout(handler, chain.paths[1]!)
    assert.ok(after.entries.length > before.entries.length)
    assert.equal(after.tableOffset, before.tableOffset)
    assert.deepEqual(after.entries.slice(0, 2), before.entries.slice(0, 2))
    assert.ok(after.entries[110]! > before.entries[1]!)
    await assertMerged(handler, chain, 1)
  })

  it('moves the BAT behind the data when it outgrows its place before the first block', async () => {
    const { handler } = remote
    const chain = await createVhdChain(handler, {
      dir: DISK_DIR,
      virtualSize: 250 * MiB,
      sizes: [250 * MiB, 512 * MiB],
      seed: 22,
      layers: [[0, 1], [1, 200]],
    })
    const before = await readLayout(handler, chain.paths[0]!)
    await mergeChain(handler, chain.paths)
    const after = await readLayout(handler, chain.paths[1]!)
    assert.ok(after.entries.length >= 256)
    assert.equal(after.entries[0], before.entries[0])
    assert.equal(after.entries[1], before.entries[1])
    assert.ok(after.tableOffset > before.entries[1]! * 512)
    await assertMerged(handler, chain, 1)
  })
})
