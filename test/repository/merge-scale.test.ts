/**
 * The cost of a VHD file merge follows the changed blocks, not the disk's virtual size: on a
 * 512 GiB disk (a 1 MiB block allocation table) whose delta changes two blocks, the merge writes
 * those two blocks, the part of the table that changed, the header and the footers; and the
 * merged full reads back right.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { mergeChain } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { DISK_TYPES, FOOTER_SIZE, vhdLib } from '../../src/repository/vhd-lib.js'
import { BLOCK_SIZE, layerBlock, makeFooterAndHeader } from '../helpers/vhd-fixtures.js'
import { DISK_DIR, openLocalRemote, type LocalRemote } from './merge-helpers.js'

const GiB = 1024 * 1024 * 1024
const VIRTUAL_SIZE = 512 * GiB
const SEED = 13
/** a block's bitmap and data, as stored */
const FULL_BLOCK = 512 + BLOCK_SIZE

/** writes a VHD file of `blocks` (whole blocks of layer `layer`), a delta of `parent` when given */
async function writeVhd(handler: RemoteHandler, path: string, layer: number, blocks: number[], parent?: { path: string; uuid: Buffer }): Promise<Buffer> {
  const { value: vhd, dispose } = await vhdLib.VhdFile.create(handler, path, { flags: 'wx+' })
  try {
    const { footer, header } = makeFooterAndHeader(VIRTUAL_SIZE, randomBytes(16), parent === undefined ? DISK_TYPES.DYNAMIC : DISK_TYPES.DIFFERENCING)
    vhd.footer = footer
    vhd.header = header
    if (parent !== undefined) {
      vhd.header.parentUuid = parent.uuid
      vhd.header.parentUnicodeName = posix.basename(parent.path)
    }
    await vhd.writeHeader()
    await vhd.writeBlockAllocationTable()
    await vhd.readBlockAllocationTable()
    if (parent !== undefined) await vhd.setUniqueParentLocator(posix.basename(parent.path))
    for (const block of blocks) await vhd.writeEntireBlock({ id: block, buffer: layerBlock(SEED, layer, block, undefined) })
    await vhd.writeBlockAllocationTable()
    await vhd.writeHeader()
    await vhd.writeFooter()
    return footer.uuid
  } finally {
    await dispose()
  }
}

/** `handler`, counting the bytes written with `write` (positional writes into open files) */
function countingWrites(handler: RemoteHandler): { handler: RemoteHandler; written: () => number } {
  let written = 0
  const proxy = new Proxy(handler, {
    get(target, key) {
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function') return value
      const method = (value as (...args: unknown[]) => Promise<unknown>).bind(target)
      if (key !== 'write') return method
      return async (...args: unknown[]) => {
        written += (args[1] as Buffer).length
        return method(...args)
      }
    },
  })
  return { handler: proxy, written: () => written }
}

describe('mergeChain — VHD files at scale', () => {
  let remote: LocalRemote
  beforeEach(async () => {
    remote = await openLocalRemote()
  })
  afterEach(() => remote.close())

  it('on a 512 GiB disk, writes the changed blocks and the changed part of the block allocation table only', async () => {
    const { handler } = remote
    await handler.mktree(DISK_DIR)
    const parentPath = `${DISK_DIR}/full.vhd`
    const childPath = `${DISK_DIR}/delta.vhd`
    // the full holds blocks 1 and 100,000; the delta overwrites block 1 and adds block 200,000
    const uuid = await writeVhd(handler, parentPath, 0, [1, 100_000])
    await writeVhd(handler, childPath, 1, [1, 200_000], { path: parentPath, uuid })

    const counted = countingWrites(handler)
    const result = await mergeChain(counted.handler, [parentPath, childPath])
    assert.equal(result.mergedPath, childPath)
    assert.equal(result.blocks, 2)

    // two blocks, the 256 KiB chunk of the 1 MiB table holding the entry of the appended block
    // 200,000 (block 1 is rewritten where the full has it: its entry stays), the header and the
    // footers (the trailing one moved behind the appended block, then both rewritten)
    const bound = 2 * FULL_BLOCK + 256 * 1024 + 1024 + 3 * FOOTER_SIZE
    assert.ok(counted.written() <= bound, `${counted.written()} bytes written, at most ${bound} expected`)

    const { value: vhd, dispose } = await vhdLib.openVhd(handler, childPath, { flags: 'r' })
    try {
      await vhd.readBlockAllocationTable()
      assert.equal(vhd.footer.diskType, DISK_TYPES.DYNAMIC)
      const held: number[] = []
      for (let block = 0; block < vhd.header.maxTableEntries; block++) if (vhd.containsBlock(block)) held.push(block)
      assert.deepEqual(held, [1, 100_000, 200_000])
      for (const [block, layer] of [[1, 1], [100_000, 0], [200_000, 1]] as const) {
        const { data } = await vhd.readBlock(block)
        assert.ok(data.equals(layerBlock(SEED, layer, block, undefined).subarray(512)), `block ${block} is layer ${layer}'s`)
      }
    } finally {
      await dispose()
    }
    assert.deepEqual((await handler.list(DISK_DIR)).sort(), ['delta.vhd'])
  })
})
