/**
 * The merge through handlers other than a local folder: VHD directories on S3 (s3rver on
 * 127.0.0.1: renames are copies and deletions, no flushes), and VHD files through a handler that
 * offers neither a real path nor `fSync`, as a remote mounted by another driver would.
 */
import assert from 'node:assert/strict'
import { BackupError } from '../../src/errors.js'
import { mergeChain, resumeMerges } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openRemote, type TestRemote } from '../helpers/remotes.js'
import { createVhdChain, MiB } from '../helpers/vhd-fixtures.js'
import { assertMerged, DISK_DIR, openLocalRemote, type LocalRemote } from './merge-helpers.js'

/** the handler without what marks it as local */
function genericHandler(handler: RemoteHandler): RemoteHandler {
  return new Proxy(handler, {
    get(target, property) {
      if (property === 'type') {
        return 'generic'
      }
      if (property === 'getRealPath' || property === 'getFilePath' || property === 'fSync') {
        return undefined
      }
      const value: unknown = Reflect.get(target, property)
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    },
  })
}

const LAYERS = [[0, 1, 2, 3], [1, 4, { index: 2, sectors: [[0, 10], [300, 4000]] as [number, number][] }], [2, 5, 9], [3]]

describe('mergeChain — VHD directories on S3', function () {
  this.timeout(300_000)
  let remote: TestRemote
  before(async () => {
    remote = await openRemote('s3')
  })
  after(() => remote.close())

  it('merges several deltas and resumes a cancelled merge', async () => {
    const { handler } = remote
    const first = await createVhdChain(handler, { dir: `${DISK_DIR}/a`, directory: true, virtualSize: 32 * MiB, seed: 51, layers: LAYERS })
    await mergeChain(handler, first.paths.slice(0, 3))
    await assertMerged(handler, first, 2)

    const second = await createVhdChain(handler, { dir: `${DISK_DIR}/b`, directory: true, virtualSize: 32 * MiB, seed: 52, layers: LAYERS })
    const controller = new AbortController()
    await assert.rejects(
      mergeChain(handler, second.paths.slice(0, 3), { signal: controller.signal, onProgress: done => done > 0 && controller.abort() }),
      (error: unknown) => error instanceof BackupError && error.code === 'CANCELLED',
    )
    const results = await resumeMerges(handler, `${DISK_DIR}/b`)
    assert.equal(results.length, 1)
    await assertMerged(handler, second, 2)
  })
})

describe('mergeChain — VHD files through a generic handler', () => {
  let remote: LocalRemote
  beforeEach(async () => {
    remote = await openLocalRemote()
  })
  afterEach(() => remote.close())

  it('merges several deltas and resumes a cancelled merge', async () => {
    const handler = genericHandler(remote.handler)
    const chain = await createVhdChain(handler, { dir: DISK_DIR, virtualSize: 32 * MiB, seed: 53, layers: LAYERS })
    const controller = new AbortController()
    await assert.rejects(
      mergeChain(handler, chain.paths.slice(0, 3), { signal: controller.signal, onProgress: done => done > 0 && controller.abort() }),
      (error: unknown) => error instanceof BackupError && error.code === 'CANCELLED',
    )
    await resumeMerges(handler, DISK_DIR)
    await assertMerged(handler, chain, 2)
  })
})
