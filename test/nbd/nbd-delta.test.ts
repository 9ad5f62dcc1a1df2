/** The changed-block bitmap turned into VHD blocks, and the differencing VHD read over NBD. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import { DISK_TYPES, parseVhdStream } from '../../src/repository/vhd-lib.js'
import { changedVhdBlocks } from '../../src/xapi/cbt.js'
import { nbdDeltaVhd } from '../../src/xapi/nbd-delta.js'

const KiB = 1024
const MiB = 1024 * KiB

function bitmapOf(bits: number, set: number[]): Buffer {
  const bitmap = Buffer.alloc(Math.ceil(bits / 8))
  for (const bit of set) bitmap[bit >> 3]! |= 0x80 >> (bit & 7)
  return bitmap
}

describe('changed blocks → VHD blocks', () => {
  it('maps each 64 KiB bit (most significant first) to the 2 MiB block holding it', () => {
    const size = 10 * MiB // 160 bits of 64 KiB, 5 VHD blocks
    assert.deepEqual(changedVhdBlocks(bitmapOf(160, [0, 31, 32, 159]), size), [0, 1, 4])
    assert.deepEqual(changedVhdBlocks(bitmapOf(160, []), size), [])
    assert.deepEqual(changedVhdBlocks(bitmapOf(160, [7, 8]), size), [0])
  })

  it('refuses a bitmap too short for the disk (a delta built on it could miss changes); ignores bits past its end', () => {
    assert.throws(() => changedVhdBlocks(Buffer.alloc(19), 10 * MiB), RangeError)
    // 10 MiB + 64 KiB: 161 bits, 21 bytes; bits 161..167 are padding
    assert.deepEqual(changedVhdBlocks(bitmapOf(168, [160, 165]), 10 * MiB + 64 * KiB), [5])
  })
})

describe('a differencing VHD read over NBD', () => {
  const size = 5 * MiB + 100 * KiB // the last block is partial
  const disk = randomBytes(size)
  const reader = { read: async (offset: number, length: number) => disk.subarray(offset, offset + length) }

  it('holds exactly the blocks asked, their bytes, the last one padded with zeros', async () => {
    const blocks = new Map<number, Buffer>()
    let diskType: number | undefined
    for await (const item of parseVhdStream(nbdDeltaVhd(reader, size, [0, 2], { readAhead: 2 }))) {
      if (item.type === 'footer') diskType = item.footer.diskType
      if (item.type === 'block') blocks.set(item.id, Buffer.from(item.buffer.subarray(512)))
    }
    assert.equal(diskType, DISK_TYPES.DIFFERENCING)
    assert.deepEqual([...blocks.keys()], [0, 2])
    assert.ok(blocks.get(0)!.equals(disk.subarray(0, 2 * MiB)))
    const last = blocks.get(2)!
    assert.equal(last.length, 2 * MiB)
    assert.ok(last.subarray(0, size - 4 * MiB).equals(disk.subarray(4 * MiB)))
    assert.ok(last.subarray(size - 4 * MiB).equals(Buffer.alloc(6 * MiB - size)))
  })

  it('a failed read fails the stream; blocks out of order or past the end are refused', async () => {
    const failing = { read: async () => Promise.reject(new Error('NBD read failed')) }
    await assert.rejects(async () => {
      for await (const _ of parseVhdStream(nbdDeltaVhd(failing, size, [1]))) void _
    }, /NBD read failed/)
    assert.throws(() => nbdDeltaVhd(reader, size, [2, 1]), RangeError)
    assert.throws(() => nbdDeltaVhd(reader, size, [3]), RangeError)
  })
})
