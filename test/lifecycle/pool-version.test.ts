import assert from 'node:assert/strict'
import { BackupError } from '../../src/errors.js'
import { assertSupportedVersion, compareVersions } from '../../src/xapi/pool-version.js'
import type { PoolVersion } from '../../src/xapi/pool-version.js'

const pool = (productVersion: string, productBrand = 'XenServer'): PoolVersion => ({
  pool: 'b6d0a1c2-0000-4000-8000-000000000001',
  poolName: 'lab',
  host: 'b6d0a1c2-0000-4000-8000-000000000002',
  hostName: 'xs-master',
  productVersion,
  productBrand,
})

describe('pool version gate', () => {
  it('compares dotted versions numerically', () => {
    assert.equal(compareVersions('6.5.0', '6.5.0'), 0)
    assert.equal(compareVersions('6.5', '6.5.0'), 0)
    assert.equal(compareVersions('6.2.0', '6.5.0'), -1)
    assert.equal(compareVersions('6.10.0', '6.5.0'), 1)
    assert.equal(compareVersions('7.0.0', '6.5.0'), 1)
  })

  it('refuses a pool below 6.5.0, naming the pool, the host and the version', () => {
    for (const version of ['6.2.0', '6.1', '5.6.100', '']) {
      assert.throws(
        () => assertSupportedVersion(pool(version)),
        (error: unknown) =>
          error instanceof BackupError &&
          error.code === 'POOL_TOO_OLD' &&
          error.message.includes('"lab"') &&
          error.message.includes('"xs-master"') &&
          error.message.includes(version === '' ? 'no product version' : version) &&
          error.context.productVersion === version
      )
    }
  })

  it('accepts XenServer 6.5 and later, XCP-ng 7.x and 8.x', () => {
    for (const [version, brand] of [
      ['6.5.0', 'XenServer'],
      ['7.1.2', 'XenServer'],
      ['8.2.1', 'Citrix Hypervisor'],
      ['7.6.0', 'XCP-ng'],
      ['8.2.1', 'XCP-ng'],
      ['8.3.0', 'XCP-ng'],
    ] as const) {
      assert.doesNotThrow(() => assertSupportedVersion(pool(version, brand)))
    }
  })
})
