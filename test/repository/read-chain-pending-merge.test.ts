/**
 * A restore point still listed reads right even right after a merge was killed (SIGKILL) in the
 * middle, with no backup run in between: the chain reader finishes the pending merge first,
 * under the VM's chain lock. When it may not write (or the chain is locked, or the merge is
 * Xen Orchestra's), it fails with MERGE_PENDING and leaves the remote as it found it.
 */
import assert from 'node:assert/strict'
import { withChainLock } from '../../src/repository/lock.js'
import { listMergeStates, mergeStatePath } from '../../src/repository/merge/state.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { hashStream } from './exports.js'
import { createVhdChain, MiB, type VhdChain } from '../helpers/vhd-fixtures.js'
import { assertMerged, openLocalRemote } from './merge-helpers.js'
import { runMergeChild, type ChildOutcome } from './merge-crash-runner.js'

const VM = '0b5a1c3e-7d2f-4e8a-9c6b-1f2e3d4c5b6a'
const VDI = '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9'
const DIR = `xo-vm-backups/${VM}/vdis/job/${VDI}`
/** restore points merged away (their metadata is removed before the merge: no longer listed) */
const MERGED = 2

function runChild(remote: string, chain: string[], killBefore?: number): Promise<ChildOutcome> {
  return runMergeChild(remote, chain, { killBefore })
}

function buildChain(handler: RemoteHandler, directory: boolean): Promise<VhdChain> {
  return createVhdChain(handler, {
    dir: DIR,
    directory,
    virtualSize: 16 * MiB,
    seed: 7,
    layers: [
      [0, 1, 2, 3, 5],
      [1, 4, { index: 2, sectors: [[0, 64], [1000, 1100]] }],
      [2, 5, 6, 7],
      [3, 6],
    ],
  })
}

async function readHash(handler: RemoteHandler, path: string): Promise<string> {
  return (await hashStream((await openChainRawStream(handler, path)).stream)).sha256
}

/** a chain whose merge was killed before its `killBefore`th change to the remote */
async function crashedMerge(remote: { handler: RemoteHandler; path: string }, directory: boolean, killBefore: number): Promise<VhdChain> {
  const chain = await buildChain(remote.handler, directory)
  const outcome = await runChild(remote.path, chain.paths.slice(0, MERGED + 1), killBefore)
  assert.equal(outcome.signal, 'SIGKILL', `change ${killBefore}: ${outcome.stderr}`)
  return chain
}

/**
 * The first one after the state file is written, one in the middle, the last three (rename,
 * deletions); every one from 2 on with READ_CHAIN_CRASH_ALL=1.
 */
function killPoints(changes: number): number[] {
  if (process.env['READ_CHAIN_CRASH_ALL'] === '1') return Array.from({ length: changes - 1 }, (_, i) => i + 2)
  const points = new Set([2, 2 + Math.round((changes - 5) / 2), changes - 2, changes - 1, changes])
  return [...points].filter(point => point >= 2 && point <= changes).sort((a, b) => a - b)
}

for (const directory of [false, true]) {
  describe(`reading a chain right after a merge crash — VHD ${directory ? 'directories' : 'files'}`, function () {
    this.timeout(300_000)
    let changes = 0

    before(async () => {
      const remote = await openLocalRemote()
      try {
        const chain = await buildChain(remote.handler, directory)
        const outcome = await runChild(remote.path, chain.paths.slice(0, MERGED + 1))
        assert.equal(outcome.signal, null, outcome.stderr)
        changes = (JSON.parse(outcome.stdout) as { changes: number }).changes
        assert.ok(changes >= 8, `${changes} changes`)
      } finally {
        await remote.close()
      }
    })

    it('every listed restore point reads byte-exact, the pending merge finished first', async () => {
      let pendingSeen = 0
      for (const killBefore of killPoints(changes)) {
        const remote = await openLocalRemote()
        const label = `killed before change ${killBefore}/${changes}`
        try {
          const chain = await crashedMerge(remote, directory, killBefore)
          const pending = (await listMergeStates(remote.handler, DIR)).length > 0
          if (pending) pendingSeen++
          // newest first: the first read is the one furthest from the full
          for (let i = chain.paths.length - 1; i >= MERGED; i--) {
            assert.equal(await readHash(remote.handler, chain.paths[i]!), chain.hashes[i], `restore point ${i}`)
          }
          assert.deepEqual(await listMergeStates(remote.handler, DIR), [], `merge state left`)
          // a merge killed before it recorded its state changed nothing: it runs anew later
          if (pending) await assertMerged(remote.handler, chain, MERGED)
          else assert.equal(await readHash(remote.handler, chain.paths[0]!), chain.hashes[0], `untouched full`)
        } catch (error) {
          throw new Error(`${label}: ${(error as Error).message}`, { cause: error })
        } finally {
          await remote.close()
        }
      }
      assert.ok(pendingSeen >= 3, `only ${pendingSeen} crashes left a pending merge`)
    })

    it('a read that may not write fails with MERGE_PENDING and changes nothing', async () => {
      const remote = await openLocalRemote()
      try {
        const chain = await crashedMerge(remote, directory, changes - 2)
        const statePath = mergeStatePath(chain.paths[0]!)
        const before = await remote.handler.readFile(statePath)
        await assert.rejects(openChainRawStream(remote.handler, chain.paths[MERGED]!, { pendingMerge: 'fail' }), {
          code: 'MERGE_PENDING',
          message: /interrupted merge is pending .*next backup run/,
        })
        assert.deepEqual(await remote.handler.readFile(statePath), before)
        // the default reader then finishes it
        assert.equal(await readHash(remote.handler, chain.paths[MERGED]!), chain.hashes[MERGED])
        await assertMerged(remote.handler, chain, MERGED)
      } finally {
        await remote.close()
      }
    })

    it('a read while another writer holds the chain waits for it, and past its timeout fails with CHAIN_LOCKED, changing nothing', async () => {
      const remote = await openLocalRemote()
      try {
        const chain = await crashedMerge(remote, directory, changes - 2)
        await withChainLock(remote.handler, VM, async () => {
          await assert.rejects(openChainRawStream(remote.handler, chain.paths[MERGED]!, { lock: { timeoutMs: 0 } }), {
            code: 'CHAIN_LOCKED',
            message: /being written by a backup run \(or its merge\) of this process; this read waited 0 s for it and gave up, nothing was read/,
          })
        })
        assert.equal((await listMergeStates(remote.handler, DIR)).length, 1)
      } finally {
        await remote.close()
      }
    })
  })
}

describe('reading a chain with a merge state of another engine', () => {
  it('fails with MERGE_PENDING, leaving the merge to Xen Orchestra', async () => {
    const remote = await openLocalRemote()
    try {
      const chain = await buildChain(remote.handler, false)
      const statePath = mergeStatePath(chain.paths[0]!)
      await remote.handler.writeFile(statePath, JSON.stringify({ parent: { uuid: 'x' }, child: { uuid: 'y' }, step: 'mergeBlocks' }))
      await assert.rejects(openChainRawStream(remote.handler, chain.paths.at(-1)!), { code: 'MERGE_PENDING', message: /Xen Orchestra/ })
      assert.equal((await listMergeStates(remote.handler, DIR)).length, 1)
    } finally {
      await remote.close()
    }
  })
})
