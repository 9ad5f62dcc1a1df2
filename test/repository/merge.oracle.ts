/**
 * Cross-check with an independent VHD reader: `qemu-img compare` (qemu-utils) of the merged full
 * against the expected raw disk. A merged VHD directory is first streamed to a VHD file with
 * vhd-lib, since qemu reads VHD files only.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { mergeChain } from '../../src/repository/merge/index.js'
import { vhdLib } from '../../src/repository/vhd-lib.js'
import { BLOCK_SIZE, createVhdChain, expectedBlock, MiB, resolveVhdData, type VhdChain } from '../helpers/vhd-fixtures.js'
import { DISK_DIR, openLocalRemote, type LocalRemote } from './merge-helpers.js'

const run = promisify(execFile)

/** Write the expected raw disk of restore point `upTo` as a sparse file. */
async function writeExpectedRaw(chain: VhdChain, upTo: number, path: string): Promise<void> {
  const size = chain.layers[upTo]!.size
  const file = await open(path, 'w')
  try {
    await file.truncate(size)
    for (let block = 0; block * BLOCK_SIZE < size; block++) {
      if (chain.layers.slice(0, upTo + 1).some(layer => layer.blocks.has(block))) {
        await file.write(expectedBlock(chain, upTo, block), 0, BLOCK_SIZE, block * BLOCK_SIZE)
      }
    }
  } finally {
    await file.close()
  }
}

async function qemuCompare(vhdPath: string, rawPath: string): Promise<void> {
  const { stdout } = await run('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', vhdPath, rawPath])
  assert.match(stdout, /Images are identical/)
}

for (const directory of [false, true]) {
  describe(`merge oracle: qemu-img compare — VHD ${directory ? 'directories' : 'files'}`, () => {
    let remote: LocalRemote
    beforeEach(async () => {
      remote = await openLocalRemote()
    })
    afterEach(() => remote.close())

    it('the merged full holds exactly the kept restore point’s disk', async () => {
      const chain = await createVhdChain(remote.handler, {
        dir: DISK_DIR,
        directory,
        virtualSize: 64 * MiB,
        sizes: [64 * MiB, 64 * MiB, 96 * MiB],
        seed: 41,
        layers: [
          [0, 1, 2, 3, 20],
          [1, 5, { index: 2, sectors: [[0, 100], [2000, 4096]] }],
          [2, 6, 40, { index: 3, sectors: [[17, 18]] }],
        ],
      })
      await mergeChain(remote.handler, chain.paths)
      const raw = join(remote.path, 'expected.raw')
      await writeExpectedRaw(chain, 2, raw)
      let vhdFile = join(remote.path, chain.paths[2]!)
      if (directory) {
        vhdFile = join(remote.path, 'streamed.vhd')
        const { value: vhd, dispose } = await vhdLib.openVhd(remote.handler, await resolveVhdData(remote.handler, chain.paths[2]!))
        try {
          await vhd.readBlockAllocationTable()
          await pipeline(vhd.stream(), createWriteStream(vhdFile))
        } finally {
          await dispose()
        }
      }
      await run('qemu-img', ['check', '-f', 'vpc', vhdFile]).catch((error: { stdout?: string; code?: number }) => {
        // vpc has no consistency check in qemu: only "not supported" (exit 63) is acceptable
        assert.equal(error.code, 63, error.stdout)
      })
      await qemuCompare(vhdFile, raw)
    })
  })
}
