/**
 * Every timing of a chain read against a retention merge of the same chain: the merge paused at
 * each of its calls that change the remote in turn (then the read started), and the read paused at
 * each of its reads in turn (then the merge started); P1 and P2; one process and two; VHD files and
 * VHD directories. Each read returns exactly its restore point's bytes or a clear refusal
 * (`interleave` asserts it). `READ_LOCK_MAX_CALLS` bounds the sweep (default: until the paused side
 * finishes before its pause).
 */
import assert from 'node:assert/strict'
import { interleave, type Order } from './read-lock-interleavings.js'

const MAX_CALLS = Number(process.env['READ_LOCK_MAX_CALLS'] ?? 400)

describe('campaign: a chain read and a retention merge at every timing', function () {
  for (const directory of [false, true]) {
    for (const order of ['merge-first', 'read-first'] as Order[]) {
      for (const point of [1, 2] as const) {
        for (const sameHandler of [true, false]) {
          it(`${order}, P${point}, ${sameHandler ? 'one process' : 'two processes'} (${directory ? 'VHD directories' : 'VHD files'})`, async function () {
            const seen = new Map<string, number>()
            let n = 1
            for (; n <= MAX_CALLS; n++) {
              const outcome = await interleave({ order, n, point, directory, sameHandler })
              if (!outcome.paused) break
              const key = `read ${outcome.read}, merge ${outcome.merge}`
              seen.set(key, (seen.get(key) ?? 0) + 1)
            }
            console.log(`      ${n - 1} timings: ${[...seen].map(([key, count]) => `${count} × ${key}`).join('; ')}`)
            assert.ok(n > 1, 'at least one timing paused')
          })
        }
      }
    }
  }
})
