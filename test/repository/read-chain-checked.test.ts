/**
 * The chain reader checks every block before handing it on: damage anywhere in the chain (the
 * first block handed on, a middle delta, the last block handed on, the newest delta) still fails the stream with DATA_DAMAGED naming the VHD and the block, the stream never ends as
 * if it succeeded, and no byte of the damaged block, nor any wrong byte, reaches the consumer.
 * On VHD files and VHD directories, for the VHD stream and the raw stream.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { vhdPath } from '../../src/repository/layout.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { openChainRawStream, openChainVhdStream, type ChainDamage } from '../../src/restore/read-chain.js'
import { flipFourBytesInBlock } from './damage.js'
import { BLOCK, exportStream, seededChain, type ExportSpec } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VDI = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 16 * 1024 * 1024

/** a full of blocks 0, 2, 4, 6 and three deltas: the chain reads 0 (full), 1 and 4 (delta 1), 7 (delta 2), 2 and 3 (delta 3), 6 (full) */
const CHAIN = seededChain(SIZE, 3)

/** the index of the VHD of `chain` whose block `id` the chain reads (the newest holding it) */
function holder(chain: readonly ExportSpec[], id: number): number {
  for (let i = chain.length - 1; i >= 0; i--) if (chain[i]!.blocks.has(id)) return i
  throw new Error(`no VHD holds block ${id}`)
}

const DAMAGE = [
  { what: 'the first block handed on, in the full', block: 0, vhd: 0 },
  { what: 'a block of a middle delta', block: 4, vhd: 1 },
  { what: 'the last block handed on, in a middle delta (read ahead while earlier blocks are handed on)', block: 7, vhd: 2 },
  { what: 'a block of the newest delta', block: 3, vhd: 3 },
] as const

interface Drained {
  readonly bytes: Buffer
  readonly ended: boolean
  readonly error?: Error & { code?: string }
}

async function drain(stream: Readable): Promise<Drained> {
  const chunks: Buffer[] = []
  let ended = false
  stream.once('end', () => (ended = true))
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer)
  } catch (error) {
    return { bytes: Buffer.concat(chunks), ended, error: error as Error }
  }
  return { bytes: Buffer.concat(chunks), ended }
}

/** where block `id` starts in the VHD stream `bytes` (its BAT, right after footer and header) */
function vhdStreamOffsetOf(bytes: Buffer, id: number): number {
  return bytes.readUInt32BE(512 + 1024 + 4 * id) * 512
}

for (const directory of [false, true]) {
  describe(`chain read, blocks read and checked ahead (${directory ? 'VHD directories' : 'VHD files'})`, () => {
    let remote: TempRemote
    let paths: string[]
    beforeEach(async () => {
      remote = await openTempRemote()
      paths = []
      for (let i = 0; i < CHAIN.length; i++) {
        const path = vhdPath(VM, 'job-1', VDI, `20261126T0550${String(10 + i)}Z`, directory)
        await writeVhd(remote.handler, path, exportStream(CHAIN[i]!), { uuid: randomUUID(), ...(i > 0 ? { parent: paths[i - 1]! } : {}) })
        paths.push(path)
      }
    })
    afterEach(async () => {
      await remote.close()
    })

    it('the VHD stream carries no uninitialised memory: the BAT past its last entry is unused entries (0xff), and two streams of the chain are the same bytes', async () => {
      const newest = paths.at(-1)!
      const first = await drain((await openChainVhdStream(remote.handler, newest)).stream)
      // memory handed out and filled in between, as a busy process does
      for (let i = 0; i < 64; i++) Buffer.allocUnsafe(4096).fill(i)
      const second = await drain((await openChainVhdStream(remote.handler, newest)).stream)
      assert.equal(first.ended && second.ended, true)
      const entries = first.bytes.readUInt32BE(512 + 28)
      const padding = first.bytes.subarray(512 + 1024 + entries * 4, 512 + 1024 + Math.ceil((entries * 4) / 512) * 512)
      assert.ok(padding.length > 0, 'the test disk has a BAT with padding')
      assert.ok(padding.every(byte => byte === 0xff), 'the BAT padding is unused entries')
      assert.ok(first.bytes.equals(second.bytes), 'two streams of one chain are the same bytes')
    })

    for (const damage of DAMAGE) {
      it(`damage in ${damage.what}: the stream fails naming VHD and block, never ends, and hands on only good bytes before it`, async () => {
        assert.equal(holder(CHAIN, damage.block), damage.vhd)
        const newest = paths.at(-1)!
        const good = {
          vhd: await drain((await openChainVhdStream(remote.handler, newest)).stream),
          raw: await drain((await openChainRawStream(remote.handler, newest)).stream),
        }
        assert.equal(good.vhd.error, undefined)
        assert.equal(good.raw.error, undefined)
        await flipFourBytesInBlock(remote.root, remote.handler, paths[damage.vhd]!, damage.block)
        for (const kind of ['vhd', 'raw'] as const) {
          const open = kind === 'vhd' ? openChainVhdStream : openChainRawStream
          const read = await drain((await open(remote.handler, newest, { restorePoint: 'the-point' })).stream)
          assert.ok(read.error !== undefined, `${kind}: the stream of a damaged chain ended without an error`)
          assert.equal(read.error.code, 'DATA_DAMAGED', read.error.message)
          assert.ok(read.error.message.includes(`block ${damage.block} of VHD ${paths[damage.vhd]}`), read.error.message)
          assert.ok(read.error.message.includes('restore point the-point'), read.error.message)
          assert.equal(read.ended, false, `${kind}: the stream ended as if it succeeded`)
          const damagedAt = kind === 'vhd' ? vhdStreamOffsetOf(good.vhd.bytes, damage.block) : damage.block * BLOCK
          assert.ok(read.bytes.length <= damagedAt, `${kind}: ${read.bytes.length} bytes handed on, the damaged block starts at ${damagedAt}`)
          const [handed, expected] = [read.bytes, good[kind].bytes.subarray(0, read.bytes.length)]
          assert.ok(handed!.equals(expected!), `${kind}: wrong bytes handed on before the failure`)
        }
      })
    }

    it('allowDamaged: the stream ends with every block, only the damaged one differs, and it is reported once', async () => {
      const newest = paths.at(-1)!
      const good = await drain((await openChainRawStream(remote.handler, newest)).stream)
      await flipFourBytesInBlock(remote.root, remote.handler, paths[2]!, 7)
      const damages: ChainDamage[] = []
      const read = await drain((await openChainRawStream(remote.handler, newest, { allowDamaged: true, onDamage: d => damages.push(d) })).stream)
      assert.equal(read.error, undefined)
      assert.equal(read.ended, true)
      assert.deepEqual(damages.map(d => [d.vhd, d.block]), [[paths[2], 7]])
      assert.equal(read.bytes.length, good.bytes.length)
      const differing = new Set<number>()
      for (let i = 0; i < good.bytes.length; i++) if (read.bytes[i] !== good.bytes[i]) differing.add(Math.floor(i / BLOCK))
      assert.deepEqual([...differing], [7])
    })
  })
}
