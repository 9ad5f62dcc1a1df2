/**
 * Issue 10, finding 9: the check of the base before a delta read the whole base VHD, so the first
 * delta after a full re-read the full. It now costs the base's structure, its checksum list and a
 * few sampled blocks: the bytes a run reads from the remote are counted (not timed) and bounded
 * by that, far below the full's size. On VHD files and VHD directories.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { BASE_SAMPLED_BLOCKS } from '../../src/lifecycle/actions/choose-base.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { BLOCK, MiB, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

/** `handler` with every byte read from it counted */
function counting(handler: RemoteHandler): { handler: RemoteHandler; read: () => number } {
  let bytes = 0
  const wrapped = new Proxy(handler, {
    get(target, key) {
      const value = Reflect.get(target, key) as unknown
      if (typeof value !== 'function') return value
      if (key === 'read') {
        return async (...args: Parameters<RemoteHandler['read']>) => {
          const result = await target.read(...args)
          bytes += result.bytesRead
          return result
        }
      }
      if (key === 'readFile') {
        return async (...args: Parameters<RemoteHandler['readFile']>) => {
          const result = await target.readFile(...args)
          bytes += result.length
          return result
        }
      }
      if (key === 'createReadStream') {
        return async (...args: Parameters<RemoteHandler['createReadStream']>) => {
          const stream: Readable = await target.createReadStream(...args)
          stream.on('data', (chunk: Buffer) => void (bytes += chunk.length))
          return stream
        }
      }
      return (value as (...a: unknown[]) => unknown).bind(target)
    },
  })
  return { handler: wrapped, read: () => bytes }
}

for (const remote of ['file', 'file-vhd-directory'] as const) {
  describe(`the base check before a delta costs the structure, not the size [${remote}]`, function () {
    let harness: Harness

    before(async function () {
      harness = await startHarness({ inventory: 'empty', remote })
    })
    after(async function () {
      await harness?.close()
    })

    it('the first delta after a 64 MiB full reads a few blocks of it, not all 32', async function () {
      const { sim } = harness.pool
      const { vm, vdis } = sim.createVm({ name: 'big full', disks: [{ name: 'root', size: 64 * MiB }] })
      await sim.writeGuest(vdis[0]!, 0, randomBytes(64 * MiB))
      const first = (await runJob(harness.job([vm]), harness.env())).vms[0]!
      assert.deepEqual(first.disks.map(d => d.mode), ['full'])

      await sim.writeGuest(vdis[0]!, 5 * BLOCK, randomBytes(4096))
      const plain = harness.handler
      const counted = counting(plain)
      harness.handler = counted.handler
      try {
        const second = (await runJob(harness.job([vm]), harness.env())).vms[0]!
        assert.equal(second.status, 'success', second.error)
        assert.deepEqual(second.disks.map(d => d.mode), ['delta'], second.warnings.join('; '))
      } finally {
        harness.handler = plain
      }
      // the sampled blocks, plus footers, headers, BATs, sidecars and metadata (well under one block)
      const bound = (BASE_SAMPLED_BLOCKS + 1) * (BLOCK + 512)
      assert.ok(counted.read() <= bound, `the run read ${counted.read()} bytes from the remote, more than ${bound} (the full holds ${64 * MiB})`)
    })
  })
}
