/**
 * A chain read and a retention merge of the same chain at the same time, the timing driven by the
 * test (never by sleeps): one side is paused at its Nth call to the remote, the other side is
 * started, then the first is let go. Shared by read-lock.test.ts (a few timings) and
 * read-lock.campaign.ts (every timing).
 *
 * Restore points P0 (full), P1, P2 of one disk; retention keeps 1: P0 and P1 lose their metadata
 * and the chain is merged into P2. Whatever the order, a read of P1 or P2 returns exactly the
 * bytes of that restore point, or fails with a clear refusal (the chain is locked, or P1 no longer
 * exists) — never other bytes.
 */
import assert from 'node:assert/strict'
import { enforceRetention } from '../../src/repository/retention.js'
import { withChainLock } from '../../src/repository/lock.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import { writeBackups } from './backup-chain.js'
import { expectedDiskHash, hashStream, seededChain } from './exports.js'
import { openTempRemote } from './temp-remote.js'

export const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const DISK = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const SIZE = 8 * 1024 * 1024

const WRITES = new Set(['write', 'writeFile', 'outputFile', 'outputStream', 'rename', 'unlink', 'rmtree', 'truncate', 'copy'])
const READS = new Set(['read', 'readFile', 'createReadStream', 'list', 'getSize'])

/** a view of `base` that stops at its `n`th call of `kinds` until `resume()`; `reached` resolves then */
export function gated(base: RemoteHandler, kinds: 'writes' | 'reads', n: number) {
  const names = kinds === 'writes' ? WRITES : READS
  let calls = 0
  let open!: () => void
  const gate = new Promise<void>(resolve => (open = resolve))
  let reach!: () => void
  const reached = new Promise<void>(resolve => (reach = resolve))
  const handler = new Proxy(base, {
    get(target, key) {
      // the handler's getters read private fields: read them on the handler itself
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function') return value
      if (typeof key !== 'string' || !names.has(key)) return value.bind(target)
      return async (...args: unknown[]) => {
        if (++calls === n) {
          reach()
          await gate
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
  return { handler, reached, resume: () => open(), calls: () => calls }
}

/** refusals a read may answer instead of bytes: each says why nothing was read */
const REFUSALS = new Set(['CHAIN_LOCKED', 'CHAIN_BROKEN', 'RESTORE_POINT_NOT_FOUND', 'MERGE_PENDING'])

export type Order = 'merge-first' | 'read-first'

export interface Outcome {
  /** what the read gave: `bytes` (checked equal to the restore point's), or the refusal's code */
  readonly read: string
  /** what the retention did: `merged` or the refusal's code */
  readonly merge: string
  /** the pause was reached (false: the side finished in fewer calls) */
  readonly paused: boolean
}

async function hashOf(handler: RemoteHandler, vhd: string, lockPause?: () => Promise<void>, onWait?: () => void): Promise<string> {
  const { stream } = await openChainRawStream(handler, vhd, { lock: { ...(lockPause === undefined ? {} : { pause: lockPause }), ...(onWait === undefined ? {} : { onWait }) } })
  return (await hashStream(stream)).sha256
}

/**
 * One interleaving. `sameHandler`: reader and writer share one handler (one process, as the
 * plugin in xo-server); otherwise each has its own (as two processes: the lock on the remote).
 */
export async function interleave(opts: { order: Order; n: number; point: 1 | 2; directory: boolean; sameHandler: boolean }): Promise<Outcome> {
  const remote = await openTempRemote()
  try {
    const chain = seededChain(SIZE, 2, 7)
    const points = await writeBackups(remote.handler, VM, 'job-1', { [DISK]: chain }, { directory: opts.directory })
    const vhd = points[opts.point]!.vhds[DISK]!
    const expected = expectedDiskHash(SIZE, chain.slice(0, opts.point + 1))
    const paused = gated(remote.handler, opts.order === 'merge-first' ? 'writes' : 'reads', opts.n)
    const writerHandler = opts.order === 'merge-first' ? paused.handler : opts.sameHandler ? paused.handler : gated(remote.handler, 'writes', 0).handler
    const readerHandler = opts.order === 'read-first' ? paused.handler : opts.sameHandler ? paused.handler : gated(remote.handler, 'reads', 0).handler
    const settle = async (promise: Promise<unknown>, success: string): Promise<string> => {
      try {
        await promise
        return success
      } catch (error) {
        const code = (error as { code?: string }).code ?? String(error)
        assert.ok(REFUSALS.has(code), `not a clear refusal: ${code} ${(error as Error).message}`)
        assert.ok((error as Error).message.length > 20, (error as Error).message)
        return code
      }
    }
    const merge = () => withChainLock(writerHandler, VM, () => enforceRetention(writerHandler, { vm: VM, jobId: 'job-1', keep: 1 }))
    const check = async (hash: string) => assert.equal(hash, expected, `P${opts.point} read other bytes (order ${opts.order}, call ${opts.n})`)

    if (opts.order === 'merge-first') {
      const merging = settle(merge(), 'merged')
      const reachedPause = await Promise.race([paused.reached.then(() => true), merging.then(() => false)])
      // the reader starts while the merge is paused; it waits for it (a pause of its own, released by the test)
      let waiting!: () => void
      const waits = new Promise<void>(resolve => (waiting = resolve))
      let retry!: () => void
      const retried = new Promise<void>(resolve => (retry = resolve))
      const reading = settle(
        hashOf(readerHandler, vhd, () => retried, () => waiting()).then(check),
        'bytes',
      )
      if (reachedPause) await Promise.race([waits, reading])
      paused.resume()
      const mergeOutcome = await merging
      retry()
      return { read: await reading, merge: mergeOutcome, paused: reachedPause }
    }
    const reading = settle(hashOf(readerHandler, vhd).then(check), 'bytes')
    const reachedPause = await Promise.race([paused.reached.then(() => true), reading.then(() => false)])
    // the read finished before its pause: the merge (through the same handler) must not stop there
    if (!reachedPause) paused.resume()
    const mergeOutcome = await settle(merge(), 'merged')
    paused.resume()
    return { read: await reading, merge: mergeOutcome, paused: reachedPause }
  } finally {
    await remote.close()
  }
}
