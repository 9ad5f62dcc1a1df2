/**
 * The real `@xen-orchestra/fs` handlers (local folder and S3 over s3rver) do what the product
 * relies on, and vhd-lib's VHD directory format can be written and read back on each of them.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describeEachRemote, openHandler } from '../helpers/remotes.js'
import { parseVhdStream, vhdLib, VHD_BLOCK_SIZE } from './vhd-lib.js'
import { startS3 } from '../helpers/s3.js'

async function sha256(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(stream, hash)
  return hash.digest('hex')
}

function sha256Buffer(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** a Readable of `count` chunks of pseudo-random bytes, never all in memory at once */
function chunks(count: number, size: number, seed: number): { stream: Readable; hash: string } {
  const hash = createHash('sha256')
  const list: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.alloc(size, (seed + i) & 0xff)
    chunk.writeUInt32BE(i, 0)
    hash.update(chunk)
    list.push(chunk)
  }
  return { stream: Readable.from(list), hash: hash.digest('hex') }
}

describeEachRemote('remote handler', remote => {
  it('writes, lists, reads, renames and removes files', async () => {
    const { handler } = remote()
    const data = randomBytes(100_000)
    await handler.outputFile('a/b/one.json', data)
    assert.equal(sha256Buffer(await handler.readFile('a/b/one.json')), sha256Buffer(data))
    assert.deepEqual((await handler.list('a/b')).sort(), ['one.json'])
    assert.deepEqual(await handler.list('a'), ['b'])

    await handler.rename('a/b/one.json', 'a/b/two.json')
    assert.deepEqual(await handler.list('a/b'), ['two.json'])
    assert.equal(sha256Buffer(await handler.readFile('a/b/two.json')), sha256Buffer(data))
    await assert.rejects(handler.readFile('a/b/one.json'), { code: 'ENOENT' })

    await handler.unlink('a/b/two.json')
    assert.deepEqual(await handler.list('a/b', { ignoreMissing: true }), [])
    await assert.rejects(handler.readFile('a/b/two.json'), { code: 'ENOENT' })
  })

  it('streams a file in and out, whole and by range', async () => {
    const { handler } = remote()
    // 7 MiB: more than one S3 upload part
    const input = chunks(7, 1024 * 1024, 3)
    await handler.outputStream('streams/seven.bin', input.stream)
    assert.equal(await handler.getSize('streams/seven.bin'), 7 * 1024 * 1024)
    assert.equal(await sha256(await handler.createReadStream('streams/seven.bin')), input.hash)

    const part = await handler.read('streams/seven.bin', Buffer.alloc(16), 3 * 1024 * 1024)
    assert.equal(part.bytesRead, 16)
    assert.equal(part.buffer.readUInt32BE(0), 3)
    assert.equal(part.buffer[4], 6)
  })

  it('removes a whole tree', async () => {
    const { handler } = remote()
    for (let i = 0; i < 5; i++) await handler.outputFile(`tree/x/${i}`, String(i))
    await handler.outputFile('tree/keep', 'k')
    await handler.rmtree('tree/x')
    assert.deepEqual(await handler.list('tree'), ['keep'])
  })

  it('writes a VHD directory behind an alias and reads the same bytes back', async () => {
    const { handler } = remote()
    const diskSize = 4 * VHD_BLOCK_SIZE
    // blocks 0 and 2 hold data, 1 and 3 are holes
    const fragments = [0, 2].map(block => ({
      logicalAddressBytes: block * VHD_BLOCK_SIZE,
      data: Buffer.alloc(VHD_BLOCK_SIZE, 0x41 + block),
    }))
    const source = await vhdLib.createReadableSparseStream(
      diskSize,
      VHD_BLOCK_SIZE,
      fragments.map(f => f.logicalAddressBytes / VHD_BLOCK_SIZE),
      fragments,
    )

    const dataPath = 'vhds/data/disk.vhd'
    const aliasPath = 'vhds/disk.alias.vhd'
    const created = await vhdLib.VhdDirectory.create(handler, dataPath)
    const vhd = created.value
    let blocks = 0
    // vhd-lib's parser waits for an 'end' that its own sparse stream has already emitted: a core
    // PassThrough in between delivers it
    const relay = new PassThrough()
    void pipeline(source, relay).catch(() => {})
    for await (const item of parseVhdStream(relay)) {
      if (item.type === 'footer') vhd.footer = item.footer
      else if (item.type === 'header') vhd.header = item.header
      else if (item.type === 'block') {
        await vhd.writeEntireBlock(item)
        blocks++
      }
    }
    await vhd.writeBlockAllocationTable()
    await vhd.writeHeader()
    await vhd.writeFooter()
    await created.dispose()
    await vhdLib.VhdAbstract.createAlias(handler, aliasPath, dataPath)
    assert.equal(blocks, 2)

    const opened = await vhdLib.openVhd(handler, aliasPath)
    try {
      const read = opened.value
      await read.readBlockAllocationTable()
      assert.deepEqual([0, 1, 2, 3].map(id => read.containsBlock(id)), [true, false, true, false])
      const expected = Buffer.alloc(read.footer.currentSize)
      for (const f of fragments) f.data.copy(expected, f.logicalAddressBytes)
      assert.equal(await sha256(read.rawContent()), sha256Buffer(expected))
    } finally {
      await opened.dispose()
    }
  })
})

describe('S3 test server', () => {
  it('stops with close() and its remote is then unreachable', async function () {
    const s3 = await startS3()
    const url = s3.url('other', 'dir')
    const { value: handler, dispose } = await openHandler(url)
    await handler.outputFile('probe', 'ok')
    assert.equal((await handler.readFile('probe')).toString(), 'ok')
    await dispose()
    await s3.close()
    const after = await openHandler(url).then(
      h => h.dispose().then(() => 'connected'),
      (error: unknown) => error,
    )
    assert.notEqual(after, 'connected')
  })
})
