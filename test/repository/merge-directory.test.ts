import assert from 'node:assert/strict'
import { mergeChain } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { createVhdChain, MiB } from '../helpers/vhd-fixtures.js'
import { assertMerged, DISK_DIR, openLocalRemote, type LocalRemote } from './merge-helpers.js'

interface Access {
  method: string
  path: string
  bytes?: number
}

/** A handler that records every access to a block file. */
function spyOnBlocks(handler: RemoteHandler, accesses: Access[]): RemoteHandler {
  const pathOf = (file: unknown): string =>
    typeof file === 'string' ? file : typeof file === 'object' && file !== null ? String((file as { path?: unknown }).path) : ''
  return new Proxy(handler, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property)
      if (typeof value !== 'function') {
        return value
      }
      return (...args: unknown[]) => {
        const path = pathOf(args[0])
        if (typeof property === 'string' && /\/blocks\/\d+\/\d+$/.test(path)) {
          const bytes = property === 'read' || property === 'write' ? (args[1] as Buffer).length : undefined
          accesses.push({ method: property, path, ...(bytes === undefined ? {} : { bytes }) })
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
}

describe('mergeChain — VHD directories move block files', () => {
  let remote: LocalRemote
  beforeEach(async () => {
    remote = await openLocalRemote()
  })
  afterEach(() => remote.close())

  it('renames the newest copy of each changed block and reads only their 512-byte bitmaps', async () => {
    const chain = await createVhdChain(remote.handler, {
      dir: DISK_DIR,
      directory: true,
      virtualSize: 32 * MiB,
      seed: 31,
      layers: [[0, 1, 2, 3], [1, 4, 9], [1, 2, 10], [3]],
    })
    const accesses: Access[] = []
    const result = await mergeChain(spyOnBlocks(remote.handler, accesses), chain.paths.slice(0, 3))
    assert.equal(result.blocks, 5) // 1, 2, 4, 9, 10

    const renames = accesses.filter(a => a.method === 'rename').map(a => a.path)
    const newest = (layer: number, block: number): string =>
      `${DISK_DIR}/data/${chain.layers[layer]!.name}.vhd/blocks/0/${block}`
    assert.deepEqual(renames.sort(), [newest(1, 4), newest(1, 9), newest(2, 1), newest(2, 2), newest(2, 10)].sort())

    const dataAccesses = accesses.filter(
      a => !(a.method === 'read' && a.bytes === 512) && a.method !== 'rename' && a.method !== 'getSize',
    )
    assert.deepEqual(dataAccesses, [], 'no block data read or written')
    assert.equal(accesses.filter(a => a.method === 'read').length, 5)
    await assertMerged(remote.handler, chain, 2)
  })

  it('composes, and only then reads, a block whose newest copy is partial', async () => {
    const chain = await createVhdChain(remote.handler, {
      dir: DISK_DIR,
      directory: true,
      virtualSize: 16 * MiB,
      seed: 32,
      layers: [[0, 1], [0, { index: 1, sectors: [[8, 16]] }]],
    })
    const accesses: Access[] = []
    await mergeChain(spyOnBlocks(remote.handler, accesses), chain.paths)
    const renamed = accesses.filter(a => a.method === 'rename').map(a => a.path)
    assert.ok(renamed.includes(`${DISK_DIR}/data/${chain.layers[1]!.name}.vhd/blocks/0/0`))
    assert.ok(!renamed.includes(`${DISK_DIR}/data/${chain.layers[1]!.name}.vhd/blocks/0/1`))
    await assertMerged(remote.handler, chain, 1)
  })
})
