/**
 * The xo-remote-parser stand-in reads the remote URLs XO stores, credentials included, the way
 * `@xen-orchestra/fs` needs them.
 */
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

interface ParsedRemote {
  readonly type: string
  readonly path?: string
  readonly host?: string
  readonly port?: number
  readonly protocol?: string
  readonly username?: string
  readonly password?: string
  readonly domain?: string
  readonly useVhdDirectory?: boolean
  readonly region?: string
}
const parser = createRequire(import.meta.url)('xo-remote-parser') as {
  parse(url: string): ParsedRemote
  format(remote: ParsedRemote): string
}

describe('remote URL parser', function () {
  it('reads S3 URLs: protocol, encoded credentials, bucket and folder, options', function () {
    const secret = 'a+b/c:d@e%f'
    const url = `s3+http://AKIA%2F1:${encodeURIComponent(secret)}@127.0.0.1:9000/bucket/some/dir?useVhdDirectory=true&region=eu-west-3`
    const remote = parser.parse(url)
    assert.deepEqual(
      { ...remote },
      { type: 's3', protocol: 'http', username: 'AKIA/1', password: secret, host: '127.0.0.1:9000', path: '/bucket/some/dir', useVhdDirectory: true, region: 'eu-west-3' },
    )
    assert.deepEqual(parser.parse(parser.format(remote)), remote)
    assert.equal(parser.parse('s3://k:s@s3.example.net/bucket').protocol, 'https')
  })

  it('reads local, NFS and SMB URLs', function () {
    assert.deepEqual({ ...parser.parse('file:///srv/backups?useVhdDirectory=true') }, { type: 'file', path: '/srv/backups', useVhdDirectory: true })
    assert.deepEqual({ ...parser.parse('file:///srv/backups') }, { type: 'file', path: '/srv/backups' })
    const nfs = parser.parse('nfs://nas.lan:2049:/export/xo')
    assert.deepEqual([nfs.type, nfs.host, nfs.port, nfs.path], ['nfs', 'nas.lan', 2049, '/export/xo'])
    const smb = parser.parse('smb://user:p%40ss@WORKGROUP\\nas\\share\\xo')
    assert.deepEqual([smb.type, smb.username, smb.password, smb.domain, smb.host, smb.path], ['smb', 'user', 'p@ss', 'WORKGROUP', 'nas', '\\share\\xo'])
  })

  it('refuses what it cannot read, without echoing credentials', function () {
    assert.throws(() => parser.parse('s3+http://key:Secr3t@host'), (error: Error) => !error.message.includes('Secr3t'))
    assert.throws(() => parser.parse('ftp://key:Secr3t@host/x'), (error: Error) => !error.message.includes('Secr3t'))
    assert.throws(() => parser.parse('key:Secr3t@host/x'), (error: Error) => !error.message.includes('Secr3t'))
  })
})
