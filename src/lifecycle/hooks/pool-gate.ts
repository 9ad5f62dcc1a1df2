/**
 * The pool gate: a pool whose master runs a product version older than 6.5.0 is refused with
 * `POOL_TOO_OLD`, before anything is snapshotted.
 */
import { BackupError } from '../../errors.js'
import { assertSupportedVersion } from '../../xapi/pool-version.js'
import type { BackupHook } from './hook.js'

export const poolGate: BackupHook = {
  step: 'checkPool',
  name: 'pool-gate',
  run(ctx) {
    if (ctx.pool === undefined) {
      throw new BackupError('POOL_TOO_OLD', 'the version of the pool was not read', { vm: ctx.vmUuid })
    }
    assertSupportedVersion(ctx.pool)
  },
}
