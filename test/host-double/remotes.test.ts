import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { startS3 } from '../helpers/s3.js'
import { OBFUSCATED_VALUE } from './sensitive-values.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

interface RemoteView {
  id: string
  name: string
  url: string
  enabled: boolean
}

describe('host double: remotes', function () {
  let dirs: string[]
  let dataDir: string
  let host: HostDouble
  let admin: XoClient

  beforeEach(async function () {
    dirs = [await mkdtemp(join(tmpdir(), 'hd-remote-a-')), await mkdtemp(join(tmpdir(), 'hd-remote-b-'))]
    dataDir = await mkdtemp(join(tmpdir(), 'hd-data-'))
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir, remotes: [{ name: 'first', url: 'file://' + dirs[0] }] })
    admin = await host.signIn()
  })

  afterEach(async function () {
    await host.close()
    await Promise.all([...dirs, dataDir].map(dir => rm(dir, { recursive: true, force: true })))
  })

  it('gives a connected, cached, real @xen-orchestra/fs handler for a file:// remote', async function () {
    const [id] = host.remoteIds
    const handler = await host.app.getRemoteHandler(id!)
    assert.equal(await host.app.getRemoteHandler({ id: id! }), handler)
    const data = randomBytes(64 * 1024)
    await handler.outputFile('dir/file.bin', data)
    assert.equal(sha256(await readFile(join(dirs[0]!, 'dir/file.bin'))), sha256(data))
    assert.deepEqual(await handler.list('dir'), ['file.bin'])
  })

  it('creates, lists, edits (same id, new handler) and deletes remotes through the API', async function () {
    const id = await admin.call<string>('remote.create', { name: 'second', url: 'file://' + dirs[1] })
    let all = await admin.call<RemoteView[]>('remote.getAll')
    assert.deepEqual(all.map(({ name, url, enabled }) => ({ name, url, enabled })), [
      { name: 'first', url: 'file://' + dirs[0], enabled: true },
      { name: 'second', url: 'file://' + dirs[1], enabled: true },
    ])

    const before = await host.app.getRemoteHandler(id)
    await before.outputFile('marker', 'b')

    // point the remote at the first folder: same id, the cached handler is dropped
    await admin.call('remote.set', { id, url: 'file://' + dirs[0] })
    const after = await host.app.getRemoteHandler(id)
    assert.notEqual(after, before)
    await after.outputFile('moved', 'a')
    assert.equal(await readFile(join(dirs[0]!, 'moved'), 'utf8'), 'a')
    assert.equal((await host.app.getRemote(id)).url, 'file://' + dirs[0])

    await admin.call('remote.delete', { id })
    all = await admin.call<RemoteView[]>('remote.getAll')
    assert.deepEqual(all.map(_ => _.name), ['first'])
    await assert.rejects(host.app.getRemoteHandler(id), (error: { code: number }) => error.code === 1)
  })

  it('refuses a handler for a disabled remote, and gives one again once re-enabled', async function () {
    const [id] = host.remoteIds
    await host.app.getRemoteHandler(id!)
    await host.setRemote(id!, { enabled: false })
    await assert.rejects(host.app.getRemoteHandler(id!), /disabled/)
    const [view] = await admin.call<RemoteView[]>('remote.getAll')
    assert.equal(view!.enabled, false)
    await admin.call('remote.set', { id, enabled: true })
    const handler = await host.app.getRemoteHandler(id!)
    await handler.outputFile('back', 'ok')
    assert.equal(await readFile(join(dirs[0]!, 'back'), 'utf8'), 'ok')
  })

  it('obfuscates credentials of an S3 remote, keeps them when the obfuscated URL is sent back', async function () {
    const url = 's3+http://AKIA:top%2Fsecret@127.0.0.1:9000/bucket/dir'
    const id = await host.addRemote('s3', url)
    const shown = await host.app.getRemote(id)
    assert.equal(shown.url.includes('secret'), false)
    assert.equal(shown.url.includes(OBFUSCATED_VALUE), true)
    assert.equal((await host.app.getRemoteWithCredentials(id)).url, url)

    await admin.call('remote.set', { id, url: shown.url.replace('/bucket/dir', '/bucket/other') })
    assert.equal((await host.app.getRemoteWithCredentials(id)).url, 's3+http://AKIA:top%2Fsecret@127.0.0.1:9000/bucket/other')
  })

  it('gives a real handler for an s3+http:// remote, credentials kept out of what is shown', async function () {
    const s3 = await startS3({ secretKey: 'hd/secret+key' })
    try {
      const url = s3.url('hd-bucket', 'xo')
      const id = await admin.call<string>('remote.create', { name: 'object storage', url })
      const [, shown] = await admin.call<RemoteView[]>('remote.getAll')
      assert.equal(shown!.url.includes(encodeURIComponent('hd/secret+key')), false)
      const handler = await host.app.getRemoteHandler(id)
      assert.equal(handler.type, 's3')
      const data = randomBytes(32 * 1024)
      await handler.outputFile('dir/object.bin', data)
      assert.equal(sha256(await handler.readFile('dir/object.bin')), sha256(data))
      // the bytes are in the bucket, under the remote's folder
      assert.equal(sha256(await readFile(s3.objectPath('hd-bucket', 'xo/dir/object.bin'))), sha256(data))
      await admin.call('remote.delete', { id })
    } finally {
      await s3.close()
    }
  })

  it('keeps remotes in the data dir: a restarted host sees the same ids', async function () {
    const first = host.remoteIds[0]
    const id = await host.addRemote('kept', 'file://' + dirs[1])
    await host.close()
    host = await startHostDouble({ pluginDir: TRIVIAL, dataDir })
    const ids = (await host.app.getAllRemotes()).map(remote => remote.id)
    assert.deepEqual(ids, [first, id])
    assert.equal((await host.app.getRemote(id)).url, 'file://' + dirs[1])
  })

  it('rejects remote.* for a non-admin and a malformed URL for anyone', async function () {
    const user = await host.signIn('user@example.net', 'user')
    await assert.rejects(user.call('remote.getAll'), (error: { code: number }) => error.code === 2)
    await assert.rejects(admin.call('remote.create', { name: 'bad', url: 'no-scheme' }), /invalid remote URL/)
  })
})
