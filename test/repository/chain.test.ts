import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { readdir, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { chainOf, newestVhd, type UnusableVhd } from '../../src/repository/chain.js'
import { diskDir, vhdDataPath, vhdPath } from '../../src/repository/layout.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { openChainRawStream, openChainVhdStream } from '../../src/restore/read-chain.js'
import { createVhdChain, MiB } from '../helpers/vhd-fixtures.js'
import { exportStream, hashStream, seededChain } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VDI = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 8 * MiB

for (const directory of [false, true]) {
  describe(`chains (${directory ? 'VHD directories' : 'VHD files'})`, () => {
    let remote: TempRemote
    beforeEach(async () => {
      remote = await openTempRemote()
    })
    afterEach(async () => {
      await remote.close()
    })

    async function write(count: number): Promise<{ paths: string[]; uuids: string[] }> {
      const chain = seededChain(SIZE, count - 1)
      const paths: string[] = []
      const uuids: string[] = []
      for (let i = 0; i < count; i++) {
        const path = vhdPath(VM, 'job-1', VDI, `20261126T0550${String(10 + i)}Z`, directory)
        uuids.push(randomUUID())
        await writeVhd(remote.handler, path, exportStream(chain[i]!), { uuid: uuids[i]!, ...(i > 0 ? { parent: paths[i - 1]! } : {}) })
        paths.push(path)
      }
      return { paths, uuids }
    }

    it('newestVhd: nothing for an empty disk folder, else the newest VHD and its footer UUID', async () => {
      assert.equal(await newestVhd(remote.handler, VM, 'job-1', VDI), undefined)
      const { paths, uuids } = await write(3)
      assert.deepEqual(await newestVhd(remote.handler, VM, 'job-1', VDI), { path: paths[2], uuid: uuids[2] })
      assert.deepEqual(await chainOf(remote.handler, paths[2]!), paths)
      assert.deepEqual(await chainOf(remote.handler, paths[0]!), [paths[0]])
    })

    it('newestVhd: nothing, with the reason, when the newest VHD or its chain is unusable', async () => {
      const { paths } = await write(3)
      // the full disappears: the chain of the newest is broken
      if (directory) await remote.handler.rmtree(vhdDataPath(paths[0]!))
      else await remote.handler.unlink(paths[0]!)
      const problems: UnusableVhd[] = []
      assert.equal(await newestVhd(remote.handler, VM, 'job-1', VDI, { onUnusable: p => problems.push(p) }), undefined)
      assert.equal(problems.length, 1)
      assert.equal(problems[0]!.path, paths[2])
      assert.match(problems[0]!.reason, /missing|unreadable/)
      await assert.rejects(chainOf(remote.handler, paths[2]!), { code: 'CHAIN_BROKEN' })
    })

    it('newestVhd: nothing when the newest VHD is damaged', async () => {
      const { paths } = await write(2)
      if (directory) await writeFile(join(remote.root, vhdDataPath(paths[1]!), 'header'), Buffer.alloc(1024, 7))
      else await truncate(join(remote.root, paths[1]!), 700)
      const problems: UnusableVhd[] = []
      assert.equal(await newestVhd(remote.handler, VM, 'job-1', VDI, { onUnusable: p => problems.push(p) }), undefined)
      assert.deepEqual(problems.map(p => p.path), [paths[1]])
    })

    it('reads chains written with vhd-lib as Xen Orchestra writes them', async () => {
      const chain = await createVhdChain(remote.handler, {
        dir: diskDir(VM, 'job-1', VDI),
        virtualSize: SIZE,
        layers: [[0, 1, 3], [1], [0, 2], [3]],
        directory,
      })
      for (let i = 0; i < chain.paths.length; i++) {
        const raw = await openChainRawStream(remote.handler, chain.paths[i]!)
        assert.equal((await hashStream(raw.stream)).sha256, chain.hashes[i], `restore point ${i}`)
      }
      const vhd = await openChainVhdStream(remote.handler, chain.paths.at(-1)!)
      const read = await hashStream(vhd.stream)
      assert.equal(read.length, vhd.length)
      assert.deepEqual(await newestVhd(remote.handler, VM, 'job-1', VDI), { path: chain.paths.at(-1), uuid: chain.uuids.at(-1) })
    })

    it('closes the chain when a reader stops early', async function () {
      const openFds = async () => (await readdir('/proc/self/fd').catch(() => undefined))?.length
      if ((await openFds()) === undefined) this.skip()
      const { paths } = await write(3)
      const before = await openFds()
      const raw = await openChainRawStream(remote.handler, paths[2]!)
      await new Promise<void>(resolve => raw.stream.once('readable', resolve))
      if (!directory) assert.ok((await openFds())! > before!, 'the chain holds its files open while read')
      raw.stream.destroy()
      await new Promise(resolve => raw.stream.once('close', resolve))
      await new Promise(resolve => setTimeout(resolve, 50))
      assert.equal(await openFds(), before)
    })
  })
}
