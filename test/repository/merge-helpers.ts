/**
 * Shared by the merge suites: a fresh local remote per test and the checks every merged chain
 * must pass.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { isMissing } from '../../src/repository/merge/options.js'
import { DISK_TYPES, vhdLib } from '../../src/repository/vhd-lib.js'
import { hashFullWithVhdLib, hashRestorePoint, resolveVhdData, type VhdChain } from '../helpers/vhd-fixtures.js'

interface SyncedHandler {
  readonly value: RemoteHandler
  dispose(): Promise<void>
}
const xoFs = createRequire(import.meta.url)('@xen-orchestra/fs') as { getSyncedHandler(remote: { url: string }): Promise<SyncedHandler> }

export interface LocalRemote {
  readonly handler: RemoteHandler
  readonly path: string
  close(): Promise<void>
}

export async function openLocalRemote(): Promise<LocalRemote> {
  const path = await mkdtemp(join(tmpdir(), 'merge-'))
  const { value: handler, dispose } = await xoFs.getSyncedHandler({ url: `file://${path}` })
  return {
    handler,
    path,
    async close() {
      await dispose()
      await rm(path, { recursive: true, force: true })
    },
  }
}

export const DISK_DIR = 'xo-vm-backups/vm/vdis/job/vdi'

async function exists(handler: RemoteHandler, path: string): Promise<boolean> {
  try {
    await handler.getSize(path)
    return true
  } catch (error) {
    if (isMissing(error)) {
      return false
    }
    throw error
  }
}

/**
 * After merging `chain.paths[0..kept]` into `chain.paths[kept]`: the merged VHDs are gone, the
 * kept one is a full with its own UUID that vhd-lib opens (both footers checked) and reads to the
 * expected bytes, every later restore point still reads right, and nothing else is left behind.
 */
export async function assertMerged(handler: RemoteHandler, chain: VhdChain, kept: number): Promise<void> {
  const keptPath = chain.paths[kept]!
  for (const path of chain.paths.slice(0, kept)) {
    assert.equal(await exists(handler, path), false, `${path} should be gone`)
  }
  const { value: vhd, dispose } = await vhdLib.openVhd(handler, keptPath, { flags: 'r' })
  try {
    assert.equal(vhd.footer.diskType, DISK_TYPES.DYNAMIC)
    assert.equal(vhd.footer.uuid.toString('hex'), chain.uuids[kept]!.replace(/-/g, ''))
    assert.equal(vhd.footer.currentSize, chain.layers[kept]!.size)
    assert.ok(vhd.header.maxTableEntries >= chain.layers[kept]!.size / 2 / 1024 / 1024)
  } finally {
    await dispose()
  }
  assert.equal(await hashFullWithVhdLib(handler, keptPath), chain.hashes[kept])
  for (let i = kept; i < chain.paths.length; i++) {
    assert.equal(await hashRestorePoint(handler, chain.paths[i]!), chain.hashes[i], `restore point ${i}`)
  }
  const names = (await handler.list(chain.dir)).filter(name => name !== 'data' && !name.endsWith('.checksums')).sort()
  assert.deepEqual(names, chain.paths.slice(kept).map(path => path.slice(chain.dir.length + 1)).sort())
  if (chain.directory) {
    const live = await Promise.all(chain.paths.slice(kept).map(path => resolveVhdData(handler, path)))
    const data = (await handler.list(`${chain.dir}/data`)).map(name => `${chain.dir}/data/${name}`).sort()
    assert.deepEqual(data, live.sort())
  }
}
