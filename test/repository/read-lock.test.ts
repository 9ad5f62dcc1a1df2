/**
 * Readers and writers of a chain never interleave: a chain read started while a retention merge
 * of the same chain runs waits for it, and a merge started while a read runs is refused
 * (`CHAIN_LOCKED`), in one process (one handler) and across processes (the lock on the remote).
 * A few timings here; every timing in read-lock.campaign.ts.
 */
import assert from 'node:assert/strict'
import { acquireChainReadLock, withChainLock, withChainReadLock } from '../../src/repository/lock.js'
import { gated, interleave, VM } from './read-lock-interleavings.js'
import { openTempRemote } from './temp-remote.js'
import { faultyHandler, fsError } from '../reliability/faulty-handler.js'

describe('chain lock: readers share it, a writer excludes them', () => {
  it('readers of one process share the lock; a writer is refused while they hold it, a reader waits for a writer and is woken when it is done', async () => {
    const remote = await openTempRemote()
    try {
      const first = await acquireChainReadLock(remote.handler, VM)
      const second = await acquireChainReadLock(remote.handler, VM)
      await assert.rejects(withChainLock(remote.handler, VM, async () => undefined), { code: 'CHAIN_LOCKED', message: /being read by a restore or a verify/ })
      await first()
      await assert.rejects(withChainLock(remote.handler, VM, async () => undefined), { code: 'CHAIN_LOCKED' })
      await second()

      let finish!: () => void
      let started!: () => void
      const writerIn = new Promise<void>(resolve => (started = resolve))
      const writing = withChainLock(remote.handler, VM, () => {
        started()
        return new Promise<void>(resolve => (finish = resolve))
      })
      await writerIn
      const events: string[] = []
      let waiting!: () => void
      const waits = new Promise<void>(resolve => (waiting = resolve))
      const reading = withChainReadLock(remote.handler, VM, async () => void events.push('read'), {
        onWait: () => {
          events.push('waits')
          waiting()
        },
      })
      await waits
      assert.deepEqual(events, ['waits'])
      finish()
      await writing
      await reading
      assert.deepEqual(events, ['waits', 'read'])
      // a reader of another process (another handler) waits for this process's readers, and gives up at its timeout
      const held = await acquireChainReadLock(remote.handler, VM)
      const other = gated(remote.handler, 'reads', 0).handler
      await assert.rejects(withChainReadLock(other, VM, async () => undefined, { timeoutMs: 0, pause: async () => {} }), {
        code: 'CHAIN_LOCKED',
        message: /another process .*waited 0 s for it and gave up, nothing was read/,
      })
      await held()
    } finally {
      await remote.close()
    }
  })
})

describe('chain lock on a remote this process may only read', () => {
  it('a reader of a read-only remote reads under the lock of its own process; a reader waiting for a writer stops when cancelled', async () => {
    const remote = await openTempRemote()
    try {
      const readOnly = faultyHandler(remote.handler, call => {
        throw fsError('EROFS', 'read-only file system', call.path)
      })
      assert.equal(await withChainReadLock(readOnly, VM, async () => 'read'), 'read')

      let finish!: () => void
      let started!: () => void
      const writerIn = new Promise<void>(resolve => (started = resolve))
      const writing = withChainLock(remote.handler, VM, () => {
        started()
        return new Promise<void>(resolve => (finish = resolve))
      })
      await writerIn
      const controller = new AbortController()
      const reading = withChainReadLock(remote.handler, VM, async () => 'read', { signal: controller.signal, onWait: () => controller.abort(new Error('cancelled by the user')) })
      await assert.rejects(reading, /cancelled by the user/)
      finish()
      await writing
    } finally {
      await remote.close()
    }
  })
})

describe('a chain read and a retention merge of the same chain at once (timings driven by the test)', () => {
  const cases = [
    { order: 'merge-first', n: 3, point: 1, sameHandler: true },
    { order: 'merge-first', n: 3, point: 2, sameHandler: false },
    { order: 'read-first', n: 6, point: 1, sameHandler: false },
    { order: 'read-first', n: 6, point: 2, sameHandler: true },
  ] as const
  for (const directory of [false, true]) {
    for (const c of cases) {
      it(`${c.order}, paused at call ${c.n}, P${c.point}, ${c.sameHandler ? 'one process' : 'two processes'} (${directory ? 'VHD directories' : 'VHD files'}): exactly its bytes or a clear refusal`, async () => {
        const outcome = await interleave({ ...c, directory })
        assert.ok(outcome.paused, 'the pause was reached')
        if (c.order === 'read-first') {
          // the read held the chain: the merge was refused, the read got its bytes
          assert.deepEqual([outcome.read, outcome.merge], ['bytes', 'CHAIN_LOCKED'])
        } else {
          // the read waited for the merge: P2 is the merged full now, P1 is gone (refused, naming what is missing)
          assert.equal(outcome.merge, 'merged')
          assert.equal(outcome.read, c.point === 2 ? 'bytes' : 'CHAIN_BROKEN')
        }
      })
    }
  }
})
