import { readPoolVersion } from '../../xapi/pool-version.js'
import type { VmRunContext } from '../context.js'

/** reads the version of the pool's master (the pool gate hook decides whether it is enough) */
export async function checkPool(ctx: VmRunContext): Promise<void> {
  ctx.pool = await readPoolVersion(ctx.xapi)
  ctx.reporter.info(`pool "${ctx.pool.poolName}": ${ctx.pool.productBrand} ${ctx.pool.productVersion}`.trim(), {
    pool: ctx.pool.pool,
    productVersion: ctx.pool.productVersion,
  })
}
