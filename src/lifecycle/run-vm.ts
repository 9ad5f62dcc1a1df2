/**
 * The backup of one VM: the steps of `steps.ts`, each with its action. Hooks (the pool gate,
 * `[NOBAK]` exclusion, continuous merge, or any other code's) are registered on the lifecycle,
 * not written here. The whole run holds the VM's chain lock: never two writers on one chain.
 *
 *   checkPool → selectDisks → snapshot → chooseBase → transfer → commit → rotateReference → retention
 *                                         (first failure) ─────────────────────────────────→ cleanup
 */
import { BackupError } from '../errors.js'
import { assertSafeId } from '../repository/layout.js'
import { withChainLock } from '../repository/lock.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { XapiClient } from '../xapi/client.js'
import { checkPool } from './actions/check-pool.js'
import { chooseBases } from './actions/choose-base.js'
import { cleanUp } from './actions/cleanup.js'
import { commitRestorePoint } from './actions/commit.js'
import { rotateReference } from './actions/rotate-reference.js'
import { selectDisks } from './actions/select-disks.js'
import { takeSnapshot } from './actions/snapshot.js'
import { transferDisks } from './actions/transfer.js'
import type { Housekeeping } from './housekeeping.js'
import { createVmRunContext, errorContextOf } from './context.js'
import type { VmRunContext } from './context.js'
import { changedBlocks, chooseTransport, keepOnlyCbtMetadata } from './hooks/changed-block-tracking.js'
import { continuousMerge } from './hooks/continuous-merge.js'
import { excludeNobak } from './hooks/exclude-nobak.js'
import type { BackupHook } from './hooks/hook.js'
import { poolGate } from './hooks/pool-gate.js'
import { recoverChain } from './hooks/recover-chain.js'
import { xoListingCache } from './hooks/xo-listing-cache.js'
import type { JobEnvironment, JobSpec, RunReporter, VmFailure, VmRunResult } from './job.js'
import { Lifecycle } from './lifecycle.js'
import type { StepActions } from './lifecycle.js'

export const BACKUP_ACTIONS: StepActions<VmRunContext> = {
  checkPool,
  selectDisks,
  snapshot: takeSnapshot,
  chooseBase: chooseBases,
  transfer: transferDisks,
  commit: commitRestorePoint,
  rotateReference,
  retention: () => {},
  cleanup: cleanUp,
}

export const DEFAULT_HOOKS: readonly BackupHook[] = [
  poolGate,
  recoverChain,
  excludeNobak,
  chooseTransport,
  changedBlocks,
  keepOnlyCbtMetadata,
  continuousMerge,
  xoListingCache,
]

export type BackupLifecycle = Lifecycle<VmRunContext>

/** a lifecycle with the product's own hooks registered; others may add theirs */
export function createBackupLifecycle(hooks: readonly BackupHook[] = DEFAULT_HOOKS): BackupLifecycle {
  const lifecycle = new Lifecycle<VmRunContext>()
  for (const hook of hooks) {
    lifecycle.addHook(hook.step, hook.name, hook.run)
  }
  return lifecycle
}

export interface RunVmOptions {
  readonly job: JobSpec
  readonly vmUuid: string
  readonly xapi: XapiClient
  readonly handler: RemoteHandler
  readonly reporter: RunReporter
  readonly signal: AbortSignal
  readonly settings?: JobEnvironment['settings']
  readonly lifecycle?: BackupLifecycle
  /** under a job: takes the work the VM's run need not wait for (without: the run waits for it) */
  readonly housekeeping?: Housekeeping
}

/** the failure's code, step and disk (named, when the error names one of the VM's disks) */
function failureDetailOf(ctx: Pick<VmRunContext, 'disks' | 'excluded'>, error: BackupError): VmFailure {
  const { step, vdi } = error.context
  const disk = typeof vdi === 'string' ? (ctx.disks.find(candidate => candidate.vdi.uuid === vdi)?.vdi.name_label ?? vdi) : undefined
  // a step that failed on a XAPI error (STEP_FAILED) is told by that error's own code
  const cause = (error as { cause?: unknown }).cause
  const causeCode = (cause as { code?: unknown } | undefined)?.code
  const code = error.code === 'STEP_FAILED' && typeof causeCode === 'string' ? causeCode : error.code
  return { code, ...(typeof step === 'string' ? { step } : {}), ...(disk === undefined ? {} : { disk }), message: error.message }
}

function resultOf(ctx: VmRunContext, error?: BackupError): VmRunResult {
  return {
    vm: ctx.vmUuid,
    ...(ctx.vm === undefined ? {} : { name: ctx.vm.name_label }),
    status: error === undefined ? 'success' : 'failure',
    ...(error === undefined ? {} : { error: error.message, failureDetail: failureDetailOf(ctx, error) }),
    disks: [...ctx.results],
    excluded: ctx.excluded.map(({ vdi, name, reason }) => ({ vdi, name, reason })),
    warnings: [...ctx.warnings],
    ...(ctx.restorePoint === undefined ? {} : { restorePoint: ctx.restorePoint }),
    merges: [...ctx.merges],
  }
}

/** backs up one VM; never rejects: a failure is in the result (and was reported) */
export async function runVm(options: RunVmOptions): Promise<VmRunResult & { readonly failure?: BackupError }> {
  const { lifecycle = createBackupLifecycle(), ...init } = options
  const ctx = createVmRunContext(init)
  try {
    assertSafeId('vm', ctx.vmUuid)
    await withChainLock(ctx.handler, ctx.vmUuid, () => lifecycle.run(ctx, BACKUP_ACTIONS, { signal: ctx.signal, errorContext: errorContextOf(ctx) }))
    return resultOf(ctx)
  } catch (error) {
    const failure =
      error instanceof BackupError ? error : new BackupError('STEP_FAILED', error instanceof Error ? error.message : String(error), errorContextOf(ctx), { cause: error })
    return { ...resultOf(ctx, failure), failure }
  }
}
