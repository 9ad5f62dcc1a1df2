/**
 * The version of a pool is the version of its master: `host.software_version.product_version`.
 * XenServer and Citrix Hypervisor report 6.5.0, 7.x, 8.x; XCP-ng (a XenServer fork) 7.x and 8.x.
 */
import { BackupError } from '../errors.js'
import type { XapiClient } from './client.js'
import { asPool, fetchRecord, asHost } from './records.js'

/** the oldest product version whose VDI export and import this product relies on */
export const MINIMUM_PRODUCT_VERSION = '6.5.0'

export interface PoolVersion {
  readonly pool: string
  readonly poolName: string
  readonly host: string
  readonly hostName: string
  readonly productVersion: string
  readonly productBrand: string
}

/** compares dotted version strings numerically (`6.10` > `6.5`); a missing part counts as 0 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(part => parseInt(part, 10) || 0)
  const pb = b.split('.').map(part => parseInt(part, 10) || 0)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (diff !== 0) {
      return Math.sign(diff)
    }
  }
  return 0
}

export async function readPoolVersion(xapi: XapiClient): Promise<PoolVersion> {
  const pool = await fetchRecord(xapi, 'pool', xapi.pool.$ref, asPool)
  const master = await fetchRecord(xapi, 'host', pool.master, asHost)
  return {
    pool: pool.uuid,
    poolName: pool.name_label,
    host: master.uuid,
    hostName: master.name_label,
    productVersion: master.software_version.product_version ?? '',
    productBrand: master.software_version.product_brand ?? '',
  }
}

/** throws `POOL_TOO_OLD` naming the pool, its master and the version found */
export function assertSupportedVersion(version: PoolVersion): void {
  const { productVersion } = version
  if (productVersion === '' || compareVersions(productVersion, MINIMUM_PRODUCT_VERSION) < 0) {
    const found = productVersion === '' ? 'no product version' : `${version.productBrand} ${productVersion}`.trim()
    throw new BackupError(
      'POOL_TOO_OLD',
      `pool "${version.poolName}" (${version.pool}): master host "${version.hostName}" (${version.host}) runs ${found}, ` +
        `continuous delta backups need XenServer/XCP-ng ${MINIMUM_PRODUCT_VERSION} or newer`,
      { pool: version.pool, host: version.host, productVersion, productBrand: version.productBrand }
    )
  }
}
