import assert from 'node:assert/strict'

import { parseCommandLine } from '../../src/cli/args.js'
import { renderBar } from '../../src/cli/progress.js'
import { SecretMasker } from '../../src/cli/secrets.js'
import { UsageError } from '../../src/cli/usage.js'

const VM = '0d3c8f9e-1111-4222-8333-444455556666'
const SR = '9a8b7c6d-1111-4222-8333-444455556666'

function usageError(argv: string[], fragment: string): void {
  assert.throws(
    () => parseCommandLine(argv),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error))
      assert.ok(error.message.includes(fragment), `"${error.message}" should say "${fragment}"`)
      return true
    }
  )
}

describe('CLI command line', () => {
  it('reads list and verify', () => {
    assert.deepEqual(parseCommandLine(['list', '--remote', 'file:///backups']), { name: 'list', options: { remote: 'file:///backups', json: false } })
    assert.deepEqual(parseCommandLine(['verify', '--remote=nfs://nas/export', '--vm', VM, '--json']), {
      name: 'verify',
      options: { remote: 'nfs://nas/export', json: true, vm: VM },
    })
  })

  it('reads restore, with root as the default user', () => {
    assert.deepEqual(
      parseCommandLine(['restore', '--remote', 'file:///b', '--restore-point', 'latest', '--vm', VM, '--pool', 'https://10.0.0.1', '--sr', SR, '--password-file', '/run/pw']),
      {
        name: 'restore',
        options: { remote: 'file:///b', restorePoint: 'latest', pool: 'https://10.0.0.1', user: 'root', json: false, allowDamaged: false, newMacAddresses: false, vm: VM, sr: SR, passwordFile: '/run/pw' },
      }
    )
  })

  it('reads restore --allow-damaged and --new-mac-addresses, and verify --sample N% with or without --seed', () => {
    const restore = parseCommandLine(['restore', '--remote', 'file:///b', '--restore-point', 'latest', '--vm', VM, '--pool', 'https://10.0.0.1', '--allow-damaged'])
    assert.equal(restore.name === 'restore' && restore.options.allowDamaged, true)
    const newMacs = parseCommandLine(['restore', '--remote', 'file:///b', '--restore-point', 'latest', '--vm', VM, '--pool', 'https://10.0.0.1', '--new-mac-addresses'])
    assert.equal(newMacs.name === 'restore' && newMacs.options.newMacAddresses, true)
    assert.deepEqual(parseCommandLine(['verify', '--remote', 'file:///b', '--sample', '5%', '--seed', '42']), {
      name: 'verify',
      options: { remote: 'file:///b', json: false, sample: { percent: 5, seed: 42 } },
    })
    assert.deepEqual(parseCommandLine(['verify', '--remote', 'file:///b', '--sample', '12.5']), {
      name: 'verify',
      options: { remote: 'file:///b', json: false, sample: { percent: 12.5 } },
    })
    usageError(['verify', '--remote', 'file:///b', '--sample', '0%'], '--sample must be a share')
    usageError(['verify', '--remote', 'file:///b', '--sample', '150%'], '--sample must be a share')
    usageError(['verify', '--remote', 'file:///b', '--seed', '3'], '--seed goes with --sample')
  })

  it('asks for help', () => {
    for (const argv of [[], ['--help'], ['-h'], ['help'], ['list', '--help'], ['restore', '-h']]) {
      assert.deepEqual(parseCommandLine(argv), { name: 'help' }, argv.join(' '))
    }
  })

  it('refuses what it does not understand, naming it', () => {
    usageError(['backup'], 'unknown command "backup"')
    usageError(['list'], '--remote is required')
    usageError(['list', '--remote', 'file:///b', '--force'], '--force')
    usageError(['list', '--remote', 'file:///b', 'extra'], 'extra')
    usageError(['list', '--remote'], '--remote')
    usageError(['list', '--remote', 'not a url'], '--remote must be a URL')
    usageError(['verify', '--remote', 'file:///b', '--vm', 'vm1'], '--vm must be a uuid')
    usageError(['restore', '--remote', 'file:///b', '--pool', 'https://h'], '--restore-point is required')
    usageError(['restore', '--remote', 'file:///b', '--restore-point', 'x'], '--pool is required')
    usageError(['restore', '--remote', 'file:///b', '--restore-point', 'x', '--pool', 'https://h', '--sr', 'default'], '--sr must be a uuid')
  })

  it('does not accept a password on the command line', () => {
    usageError(['restore', '--remote', 'file:///b', '--restore-point', 'x', '--pool', 'https://h', '--password', 'hunter2'], '--password')
  })
})

describe('CLI secrets', () => {
  it('masks the known secrets and the credentials of any URL', () => {
    const masker = new SecretMasker()
    masker.add('p@ss w0rd')
    masker.addUrl('smb://backup:s3cr%2Ft@nas/share')
    const text = masker.mask('login failed for root with p@ss w0rd on smb://backup:s3cr%2Ft@nas/share (s3cr/t) and https://admin:other@pool')
    assert.ok(!text.includes('p@ss w0rd'), text)
    assert.ok(!text.includes('s3cr'), text)
    assert.ok(!text.includes('other'), text)
    assert.ok(text.includes('smb://backup:***@nas/share'), text)
  })
})

describe('CLI progress bar', () => {
  it('fills in proportion and fits the width', () => {
    const empty = renderBar('disk system', 0, 60)
    const half = renderBar('disk system', 50, 60)
    const full = renderBar('disk system', 100, 60)
    for (const bar of [empty, half, full]) assert.equal(bar.length, 59)
    assert.equal((empty.match(/#/g) ?? []).length, 0)
    assert.equal((full.match(/-/g) ?? []).length, 0)
    const hashes = (half.match(/#/g) ?? []).length
    const dashes = (half.match(/-/g) ?? []).length
    assert.ok(Math.abs(hashes - dashes) <= 1)
    assert.ok(half.endsWith(' 50%'))
  })
})
