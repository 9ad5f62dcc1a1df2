import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { chainOf, readVhdInfo } from '../../src/repository/chain.js'
import { hashCanonicalVhd } from '../../src/repository/canonical-vhd.js'
import { vhdDataPath, vhdPath } from '../../src/repository/layout.js'
import { openVhd } from '../../src/repository/vhd-lib.js'
import { computeBlockChecksums, readSidecar } from '../../src/repository/integrity/index.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { openChainRawStream, openChainVhdStream } from '../../src/restore/read-chain.js'
import { BLOCK, exportBytes, exportStream, expectedDiskHash, hashStream, seededBlock, seededChain, sha256, type ExportSpec } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VDI = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 16 * 1024 * 1024

function timestamps(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `20261126T0550${String(10 + i).padStart(2, '0')}Z`)
}

/** every file of a local folder, recursively, relative */
async function listTree(root: string, dir = ''): Promise<string[]> {
  const entries = await readdir(join(root, dir), { withFileTypes: true })
  const files: string[] = []
  for (const entry of entries) {
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) files.push(...(await listTree(root, rel)))
    else files.push(rel)
  }
  return files.sort()
}

/** raw content of one VHD alone (not its chain), hashed */
async function rawBlocksOf(remote: TempRemote, path: string): Promise<Map<number, string>> {
  const disposable = await openVhd(remote.handler, path, { flags: 'r' })
  try {
    const vhd = disposable.value
    await vhd.readBlockAllocationTable()
    const blocks = new Map<number, string>()
    for (let id = 0; id < vhd.header.maxTableEntries; id++) {
      if (vhd.containsBlock(id)) blocks.set(id, sha256((await vhd.readBlock(id)).data))
    }
    return blocks
  } finally {
    await disposable.dispose()
  }
}

for (const directory of [false, true]) {
  describe(`writeVhd + read-chain (${directory ? 'VHD directory' : 'VHD file'})`, () => {
    let remote: TempRemote
    beforeEach(async () => {
      remote = await openTempRemote()
    })
    afterEach(async () => {
      await remote.close()
    })

    async function writeChain(chain: ExportSpec[], uuids: string[]): Promise<{ paths: string[]; results: { size: number; checksum: string }[] }> {
      const paths: string[] = []
      const results = []
      const names = timestamps(chain.length)
      for (let i = 0; i < chain.length; i++) {
        const path = vhdPath(VM, 'job-1', VDI, names[i]!, directory)
        results.push(await writeVhd(remote.handler, path, exportStream(chain[i]!), { uuid: uuids[i]!, ...(i > 0 ? { parent: paths[i - 1]! } : {}) }))
        paths.push(path)
      }
      return { paths, results }
    }

    it('writes a full and deltas that read back block for block, with our UUIDs and parent links', async () => {
      const chain = seededChain(SIZE, 3)
      const uuids = chain.map(() => randomUUID())
      const { paths, results } = await writeChain(chain, uuids)

      for (let i = 0; i < chain.length; i++) {
        const info = await readVhdInfo(remote.handler, paths[i]!)
        assert.equal(info.uuid, uuids[i])
        assert.equal(info.diskType, i === 0 ? 3 : 4)
        if (i > 0) {
          assert.equal(info.parent?.uuid, uuids[i - 1])
          assert.equal(info.parent?.path, paths[i - 1])
          // parent locator 0: the parent's name relative to the child's folder, UTF-16LE
          const disposable = await openVhd(remote.handler, paths[i]!, { flags: 'r' })
          try {
            const vhd = disposable.value
            assert.equal(vhd.header.parentUnicodeName, paths[i - 1]!.split('/').pop())
            const locator = await vhd.readParentLocator(0)
            assert.equal(locator.data.toString('utf16le'), paths[i - 1]!.split('/').pop())
          } finally {
            await disposable.dispose()
          }
        }
        const blocks = await rawBlocksOf(remote, paths[i]!)
        assert.deepEqual([...blocks.keys()].sort(), [...chain[i]!.blocks.keys()].sort())
        for (const [id, data] of chain[i]!.blocks) assert.equal(blocks.get(id), sha256(data), `block ${id} of VHD ${i}`)

        // the digest returned is the one of the block-checksum list of what is on the remote, and of its sidecar
        const recomputed = await computeBlockChecksums(remote.handler, paths[i]!)
        assert.equal(results[i]!.checksum, recomputed.digest)
        const sidecar = await readSidecar(remote.handler, paths[i]!)
        assert.equal(sidecar.status === 'ok' ? sidecar.list.digest : sidecar.status, recomputed.digest)
        assert.equal(recomputed.blockCount, chain[i]!.blocks.size)
        assert.equal(results[i]!.size, (await hashCanonicalVhd(remote.handler, paths[i]!)).size)
        if (!directory) {
          const bytes = await readFile(join(remote.root, paths[i]!))
          assert.equal(results[i]!.size, bytes.length)
        }
      }
      assert.deepEqual(await chainOf(remote.handler, paths.at(-1)!), paths)
    })

    if (directory) it('writes the VHD directory layout of vhd-lib (alias + data folder)', async () => {
      const chain = seededChain(SIZE, 1)
      const { paths } = await writeChain(chain, [randomUUID(), randomUUID()])
      const alias = (await readFile(join(remote.root, paths[1]!))).toString()
      assert.equal(alias, 'data/20261126T055011Z.vhd')
      const files = await listTree(join(remote.root, vhdDataPath(paths[1]!)))
      const expectedBlocks = [...chain[1]!.blocks.keys()].map(id => `blocks/${Math.floor(id / 1000)}/${id % 1000}`)
      assert.deepEqual(files, ['bat', 'footer', 'header', 'parentLocatorEntry0', ...expectedBlocks].sort())
    })


    it('reads a chain of 1 full + 5 deltas back as one disk (raw and as a VHD stream)', async () => {
      const chain = seededChain(SIZE, 5)
      const uuids = chain.map(() => randomUUID())
      const { paths } = await writeChain(chain, uuids)
      const expected = expectedDiskHash(SIZE, chain)

      const raw = await openChainRawStream(remote.handler, paths.at(-1)!)
      const rawHash = await hashStream(raw.stream)
      assert.equal(rawHash.length, SIZE)
      assert.equal(raw.length, SIZE)
      assert.equal(rawHash.sha256, expected)

      // the VHD stream written back as a full must give the same disk again
      const vhd = await openChainVhdStream(remote.handler, paths.at(-1)!)
      const copy = vhdPath(VM, 'job-1', VDI, '20261126T060000Z', directory)
      const copyUuid = randomUUID()
      await writeVhd(remote.handler, copy, vhd.stream, { uuid: copyUuid })
      assert.equal((await readVhdInfo(remote.handler, copy)).diskType, 3)
      const again = await openChainRawStream(remote.handler, copy)
      assert.equal((await hashStream(again.stream)).sha256, expected)

      // a restore point in the middle of the chain reads only up to it
      const middle = await openChainRawStream(remote.handler, paths[2]!)
      assert.equal((await hashStream(middle.stream)).sha256, expectedDiskHash(SIZE, chain.slice(0, 3)))
    })

    it('accepts blocks out of order in the export', async () => {
      const blocks = new Map([[5, seededBlock(5)], [1, seededBlock(1)], [3, seededBlock(3)]])
      const spec: ExportSpec = { virtualSize: SIZE, blocks, differencing: false, order: [5, 1, 3] }
      const path = vhdPath(VM, 'job-1', VDI, '20261126T055010Z', directory)
      const result = await writeVhd(remote.handler, path, exportStream(spec), { uuid: randomUUID() })
      assert.equal((await hashStream((await openChainRawStream(remote.handler, path)).stream)).sha256, expectedDiskHash(SIZE, [spec]))
      assert.equal(result.checksum, (await computeBlockChecksums(remote.handler, path)).digest)
    })

    /** the disk folder exists (the write had started) and holds no file */
    async function assertNothingLeft(path: string): Promise<void> {
      const dir = join(remote.root, path, '..')
      assert.ok((await stat(dir)).isDirectory())
      assert.deepEqual(await listTree(dir), [])
    }

    it('leaves nothing behind when the export fails midway', async () => {
      const chain = seededChain(SIZE, 0)
      const path = vhdPath(VM, 'job-1', VDI, '20261126T055010Z', directory)
      const failAt = Math.floor(exportBytes(chain[0]!).length / 2)
      let written = 0
      await assert.rejects(
        writeVhd(remote.handler, path, exportStream(chain[0]!, failAt), { uuid: randomUUID(), onProgress: bytes => (written = bytes) }),
        (error: Error & { code?: string }) => error.code === 'TRANSFER_FAILED' && /export connection lost/.test(error.message),
      )
      assert.ok(written > BLOCK, `failed after ${written} bytes written`)
      await assertNothingLeft(path)
    })

    it('leaves nothing behind when cancelled', async () => {
      const chain = seededChain(SIZE, 0)
      const path = vhdPath(VM, 'job-1', VDI, '20261126T055010Z', directory)
      const controller = new AbortController()
      await assert.rejects(
        writeVhd(remote.handler, path, exportStream(chain[0]!), {
          uuid: randomUUID(),
          signal: controller.signal,
          onProgress: bytes => bytes > BLOCK && controller.abort(),
        }),
        { code: 'CANCELLED' },
      )
      await assertNothingLeft(path)
    })

    it('refuses a full where a delta is expected, and overwriting a VHD', async () => {
      const chain = seededChain(SIZE, 1)
      const { paths } = await writeChain(chain.slice(0, 1), [randomUUID()])
      const next = vhdPath(VM, 'job-1', VDI, '20261126T055020Z', directory)
      await assert.rejects(writeVhd(remote.handler, next, exportStream(chain[0]!), { uuid: randomUUID(), parent: paths[0]! }), { code: 'TRANSFER_FAILED' })
      await assert.rejects(writeVhd(remote.handler, paths[0]!, exportStream(chain[0]!), { uuid: randomUUID() }), /refusing to overwrite/)
      assert.deepEqual((await listTree(join(remote.root, paths[0]!, '..'))).filter(f => !f.startsWith('data/')), [paths[0]!.split('/').pop(), `${paths[0]!.split('/').pop()}.checksums`])
    })
  })
}
