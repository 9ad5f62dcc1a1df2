/**
 * Cross-check with an independent VHD reader, `qemu-img compare` (qemu-utils): the full VHD
 * `writeVhd` writes, and a chain of a full and deltas read back as one VHD stream by
 * `openChainVhdStream` (then written as a full), hold exactly the expected disk.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { vhdPath } from '../../src/repository/layout.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { openChainVhdStream } from '../../src/restore/read-chain.js'
import { BLOCK, exportStream, seededChain, type ExportSpec } from './exports.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const run = promisify(execFile)
const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VDI = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 32 * 1024 * 1024

/** the raw disk a chain of exports describes, as a sparse file */
async function writeExpectedRaw(chain: readonly ExportSpec[], path: string): Promise<void> {
  const file = await open(path, 'w')
  try {
    await file.truncate(SIZE)
    for (let id = 0; id * BLOCK < SIZE; id++) {
      let data: Buffer | undefined
      for (const spec of chain) data = spec.blocks.get(id) ?? data
      if (data !== undefined) await file.write(data, 0, BLOCK, id * BLOCK)
    }
  } finally {
    await file.close()
  }
}

async function qemuCompare(vhd: string, raw: string): Promise<void> {
  const { stdout } = await run('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', vhd, raw])
  assert.match(stdout, /Images are identical/)
}

describe('writeVhd oracle: qemu-img compare', () => {
  let remote: TempRemote
  beforeEach(async () => {
    remote = await openTempRemote()
  })
  afterEach(() => remote.close())

  it('a full written by writeVhd, and a chain read back as one VHD, hold the expected disk', async () => {
    const chain = seededChain(SIZE, 4, 11)
    const paths: string[] = []
    for (let i = 0; i < chain.length; i++) {
      const path = vhdPath(VM, 'job-1', VDI, `20261126T0550${10 + i}Z`, false)
      await writeVhd(remote.handler, path, exportStream(chain[i]!), { uuid: randomUUID(), ...(i > 0 ? { parent: paths[i - 1]! } : {}) })
      paths.push(path)
    }
    const fullRaw = join(remote.root, 'full.raw')
    await writeExpectedRaw(chain.slice(0, 1), fullRaw)
    await qemuCompare(join(remote.root, paths[0]!), fullRaw)

    const synthetic = vhdPath(VM, 'job-1', VDI, '20261126T060000Z', false)
    const { stream } = await openChainVhdStream(remote.handler, paths.at(-1)!)
    await writeVhd(remote.handler, synthetic, stream, { uuid: randomUUID() })
    const chainRaw = join(remote.root, 'chain.raw')
    await writeExpectedRaw(chain, chainRaw)
    await qemuCompare(join(remote.root, synthetic), chainRaw)
  })
})
