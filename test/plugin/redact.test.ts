import assert from 'node:assert/strict'

import { redactError, redactText, redactValue } from '../../src/plugin/redact.js'

describe('redaction', () => {
  it('masks URL credentials and key=value secrets in text, keeping the rest', () => {
    assert.equal(redactText('open nfs://admin:pa55@nas/export failed'), 'open nfs://admin:***@nas/export failed')
    assert.equal(redactText('s3://AKIA123:abc/def@bucket/dir'), 's3://AKIA123:***@bucket/dir')
    assert.equal(redactText('login password=hunter2 user=root'), 'login password=*** user=root')
    assert.equal(redactText('{"password":"hunter2"}'), '{"password":"***"}')
    assert.equal(redactText('file:///srv/backups'), 'file:///srv/backups')
  })

  it('masks secret fields and every string of nested data', () => {
    const value = redactValue({ password: 'x1', nested: [{ url: 'smb://u:x2@h/s', note: 'token=x3' }], size: 3 })
    assert.deepEqual(value, { password: '***', nested: [{ url: 'smb://u:***@h/s', note: 'token=***' }], size: 3 })
  })

  it('keeps an error its name and code, not its secrets', () => {
    const error = Object.assign(new Error('cannot mount smb://u:x2@h/s'), { code: 'REMOTE_DISABLED' })
    assert.deepEqual(redactError(error), { name: 'Error', code: 'REMOTE_DISABLED', message: 'cannot mount smb://u:***@h/s' })
  })
})
