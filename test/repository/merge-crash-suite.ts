/**
 * A merge killed (SIGKILL) at any point is finished by `resumeMerges` with every remaining
 * restore point byte-exact. A child process runs the merge and dies right before its Nth change
 * to the remote, for every N of an uninterrupted run (so before and after each block write, BAT,
 * header and footer write, state change, the final rename and each deletion), then at random
 * instants. Each VHD has its checksum sidecar: the resumed merge ends with the merged VHD's
 * complete list and no sidecar of the VHDs merged away.
 *
 * `merge-crash.test.ts` (npm test) kills before a spread of the changes and once at random;
 * `merge-crash.campaign.ts` (npm run test:campaign) before every change and 3 times at random.
 */
import assert from 'node:assert/strict'
import { computeBlockChecksums, readSidecar, writeSidecar } from '../../src/repository/integrity/index.js'
import { mergeChain, resumeMerges } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { createVhdChain, hashRestorePoint, MiB, type VhdChain } from '../helpers/vhd-fixtures.js'
import { runMergeChild as runChild } from './merge-crash-runner.js'
import { assertMerged, DISK_DIR, openLocalRemote } from './merge-helpers.js'

const KEPT = 2

/** the chain, each VHD with its block-checksum sidecar (as writeVhd leaves it) */
async function buildChain(handler: RemoteHandler, directory: boolean): Promise<VhdChain> {
  const chain = await createVhdChain(handler, {
    dir: DISK_DIR,
    directory,
    virtualSize: 16 * MiB,
    seed: 99,
    layers: [
      [0, 1, 2, 3, 5],
      [1, 4, { index: 2, sectors: [[0, 64], [1000, 1100]] }],
      [2, 5, 6, 7],
      [3, 6],
    ],
  })
  for (const path of chain.paths) await writeSidecar(handler, path, await computeBlockChecksums(handler, path))
  return chain
}

/** the merged VHD's sidecar is the list read from it; the merged-away VHDs have none left */
async function assertChecksums(handler: RemoteHandler, chain: VhdChain, label: string): Promise<void> {
  const merged = chain.paths[KEPT]!
  const sidecar = await readSidecar(handler, merged)
  assert.ok(sidecar.status === 'ok', `${label}: the merged VHD's sidecar is ${sidecar.status}`)
  assert.equal(sidecar.list.digest, (await computeBlockChecksums(handler, merged)).digest, `${label}: the merged VHD's checksums`)
  for (const path of chain.paths.slice(0, KEPT)) assert.equal((await readSidecar(handler, path)).status, 'missing', `${label}: ${path}'s sidecar`)
  for (const path of chain.paths.slice(KEPT + 1)) assert.equal((await readSidecar(handler, path)).status, 'ok', `${label}: ${path}'s sidecar`)
  const names = (await handler.list(DISK_DIR)).filter(name => name.endsWith('.checksums')).sort()
  assert.deepEqual(names, chain.paths.slice(KEPT).map(path => `${path.slice(DISK_DIR.length + 1)}.checksums`).sort(), `${label}: sidecars left`)
}

async function pathExists(handler: RemoteHandler, path: string): Promise<boolean> {
  return handler.getSize(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') {
        return false
      }
      throw error
    },
  )
}

/** After an interruption: what must hold before resuming, then resume and check the end result. */
async function checkInterrupted(handler: RemoteHandler, chain: VhdChain, label: string): Promise<void> {
  if (!chain.directory) {
    // VHD files: the kept restore points read right at every instant (strict header/footer
    // checks aside, which the footer rewrite right before the rename may fail)
    for (let i = KEPT; i < chain.paths.length; i++) {
      assert.equal(await hashRestorePoint(handler, chain.paths[i]!, { strict: false }), chain.hashes[i], `${label}: restore point ${i} before resuming`)
    }
  }
  await resumeMerges(handler, DISK_DIR)
  if (await pathExists(handler, chain.paths[0]!)) {
    // interrupted before the merge recorded anything: the chain is intact, the merge runs anew
    for (let i = 0; i < chain.paths.length; i++) {
      assert.equal(await hashRestorePoint(handler, chain.paths[i]!), chain.hashes[i], `${label}: untouched restore point ${i}`)
    }
    await mergeChain(handler, chain.paths.slice(0, KEPT + 1))
  }
  await assertMerged(handler, chain, KEPT).catch((error: Error) => {
    error.message = `${label}: ${error.message}`
    throw error
  })
  await assertChecksums(handler, chain, label)
}

/**
 * The changes to die before. `all`: every one. Otherwise the first two, the last four (footers,
 * state changes, rename, deletions), the writes of the checksum files (the merged list beside the
 * state once the blocks are checked, the merged VHD's sidecar once the blocks are written: before
 * the checksums are final) and two evenly spaced ones in between.
 */
function killPoints(changes: number, all: boolean, log: readonly string[]): number[] {
  if (all || changes <= 8) {
    return Array.from({ length: changes }, (_, i) => i + 1)
  }
  const points = new Set([1, 2])
  for (const [i, change] of log.entries()) if (change.startsWith('rename ') && /\.checksums(\.[0-9a-f]+)?\.tmp /.test(change)) points.add(i + 1)
  for (let i = changes - 3; i <= changes; i++) {
    points.add(i)
  }
  for (let i = 1; i <= 2; i++) {
    points.add(2 + Math.round((i * (changes - 6)) / 3))
  }
  return [...points].sort((a, b) => a - b)
}

function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 0x100000000
  }
}

export interface MergeCrashOptions {
  /** die before every change of an uninterrupted merge, not a spread of them */
  readonly allPoints: boolean
  /** merges killed at seeded random instants */
  readonly randomRounds: number
}

export function mergeCrashSuite({ allPoints, randomRounds }: MergeCrashOptions): void {
for (const directory of [false, true]) {
  describe(`merge crash and resume${allPoints ? ', every change' : ''} — VHD ${directory ? 'directories' : 'files'}`, function () {
    this.timeout(600_000)
    let changes = 0
    let log: string[] = []
    let durationMs = 0

    it('an uninterrupted merge in a child process completes', async () => {
      const remote = await openLocalRemote()
      try {
        const chain = await buildChain(remote.handler, directory)
        const started = Date.now()
        const outcome = await runChild(remote.path, chain.paths.slice(0, KEPT + 1))
        durationMs = Date.now() - started
        assert.equal(outcome.code, 0, outcome.stderr)
        ;({ changes, log } = JSON.parse(outcome.stdout) as { changes: number; log: string[] })
        assert.ok(changes >= 10, `${changes} changes`)
        assert.ok(log.some(change => change.startsWith('rename') && change.includes('.cd-merge.checksums')), 'the merged list is written beside the state')
        await assertMerged(remote.handler, chain, KEPT)
        await assertChecksums(remote.handler, chain, 'uninterrupted')
      } finally {
        await remote.close()
      }
    })

    it(`is finished by resumeMerges after SIGKILL before ${allPoints ? 'each' : 'a spread'} of its changes`, async () => {
      assert.ok(changes > 0, 'needs the uninterrupted run')
      for (const killBefore of killPoints(changes, allPoints, log)) {
        const remote = await openLocalRemote()
        try {
          const chain = await buildChain(remote.handler, directory)
          const outcome = await runChild(remote.path, chain.paths.slice(0, KEPT + 1), { killBefore })
          assert.equal(outcome.signal, 'SIGKILL', `change ${killBefore}: ${outcome.stderr}`)
          await checkInterrupted(remote.handler, chain, `killed before change ${killBefore}/${changes}`)
        } finally {
          await remote.close()
        }
      }
    })

    it('is finished by resumeMerges after SIGKILL at random instants', async () => {
      const seed = Number(process.env['MERGE_CRASH_SEED'] ?? 4242)
      console.log(`      merge crash seed ${seed} (replay: MERGE_CRASH_SEED=${seed})`)
      const random = seededRandom(seed)
      for (let round = 0; round < randomRounds; round++) {
        const remote = await openLocalRemote()
        try {
          const chain = await buildChain(remote.handler, directory)
          const killAfterMs = Math.floor(random() * durationMs)
          await runChild(remote.path, chain.paths.slice(0, KEPT + 1), { killAfterMs })
          await checkInterrupted(remote.handler, chain, `seed ${seed}, killed after ${killAfterMs} ms`)
        } finally {
          await remote.close()
        }
      }
    })
  })
}
}
