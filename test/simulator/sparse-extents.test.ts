import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { blocksOf, dataExtents, scanForData, walkWithSeekData, type Extent } from './sparse-extents.js'

const MiB = 1024 ** 2
const BLOCK = 2 * MiB

describe('sparse file extents', () => {
  let dir: string
  let path: string
  const writes = [[3 * MiB + 5, 10], [40 * MiB, 3 * MiB], [255 * MiB, MiB]] as const

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sim-extents-'))
    path = join(dir, 'disk.raw')
    const file = await open(path, 'w')
    await file.truncate(256 * MiB)
    for (const [offset, length] of writes) await file.write(randomBytes(length), 0, length, offset)
    await file.close()
  })
  after(() => rm(dir, { recursive: true, force: true }))

  const covers = (extents: readonly Extent[], offset: number, length: number): boolean =>
    extents.some(([start, end]) => start <= offset && offset + length <= end)

  for (const [name, find] of [['lseek SEEK_DATA', walkWithSeekData], ['scan fallback', scanForData]] as const) {
    it(`${name}: reports every written range and little else`, async () => {
      const extents = await find(path)
      for (const [offset, length] of writes) assert.ok(covers(extents, offset, length), `${offset}+${length}`)
      const total = extents.reduce((sum, [start, end]) => sum + end - start, 0)
      assert.ok(total <= 8 * MiB, `${total} bytes reported as data`)
      extents.forEach(([start, end], index) => {
        assert.ok(start < end)
        if (index > 0) assert.ok(extents[index - 1]![1] <= start, 'ascending, disjoint')
      })
    })
  }

  it('maps extents to the 2 MiB blocks they touch', async () => {
    const expected = [...new Set(writes.flatMap(([offset, length]) => {
      const blocks = []
      for (let b = Math.floor(offset / BLOCK); b <= Math.floor((offset + length - 1) / BLOCK); ++b) blocks.push(b)
      return blocks
    }))].sort((a, b) => a - b)
    assert.deepEqual(blocksOf(await dataExtents(path), BLOCK), expected)
  })
})
