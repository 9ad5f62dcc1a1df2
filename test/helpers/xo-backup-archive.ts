/**
 * Xen Orchestra's own backup code as a test oracle: `@xen-orchestra/backup-archive` 1.1.2 (a
 * devDependency), whose `VmBackupDirectory.cleanVm` is the clean-up XO runs over a VM folder:
 *
 * - XO's delete of a restore point (`backupNg.deleteVmBackups`): the `.json` goes, then
 *   `cleanVm` with `remove` and without `merge`;
 * - an XO incremental backup job of the VM, before each of its runs: `cleanVm` with `merge` and
 *   `remove`, which merges every VHD no backup uses, whichever job's chain it is in.
 *
 * `xoCleanVm` runs it and returns everything it said: the warnings and infos it reports through
 * the `logWarn`/`logInfo` options, and what it logs through `@xen-orchestra/log` (where XO's merge
 * logs, e.g. "Step … is unknown"), captured while it runs.
 */
import { createRequire } from 'node:module'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { vmDir } from '../../src/repository/layout.js'

interface CleanVmOptions {
  remove: boolean
  merge: boolean
  logWarn(message: string, data?: unknown): void
  logInfo(message: string, data?: unknown): void
}
interface VmBackupDirectoryClass {
  cleanVm(handler: RemoteHandler, vmBackupPath: string, opts: CleanVmOptions): Promise<{ merge: boolean | undefined; size: number | undefined }>
}
interface XoLogRecord {
  readonly level: number
  readonly namespace: string
  readonly message: string
  readonly data: unknown
}

const require = createRequire(import.meta.url)
const { configure } = require('@xen-orchestra/log/configure') as { configure(transport: (log: XoLogRecord) => void): void }
const { LEVELS } = require('@xen-orchestra/log/levels') as { LEVELS: Record<string, number> }

/** where @xen-orchestra/log keeps its transport (its configure.js): put back after a capture */
const TRANSPORT = Symbol.for('@xen-orchestra/log')

let loaded: Promise<VmBackupDirectoryClass> | undefined
function vmBackupDirectory(): Promise<VmBackupDirectoryClass> {
  loaded ??= import('@xen-orchestra/backup-archive').then(module => (module as unknown as { VmBackupDirectory: VmBackupDirectoryClass }).VmBackupDirectory)
  return loaded
}

export interface XoCleanResult {
  /** `logWarn` calls and warnings (or worse) logged through @xen-orchestra/log, as `message data` */
  readonly warnings: string[]
  readonly infos: string[]
  readonly merge: boolean | undefined
}

function describe(message: string, data: unknown): string {
  if (data === undefined) return message
  try {
    return `${message} ${JSON.stringify(data, (_key, value: unknown) => (value instanceof Error ? { message: value.message, code: (value as { code?: unknown }).code } : value))}`
  } catch {
    return message
  }
}

/** XO's clean-up of `vm`'s folder, as XO's delete (`remove`) or XO's next incremental job (`remove` + `merge`) runs it */
export async function xoCleanVm(handler: RemoteHandler, vm: string, opts: { remove: boolean; merge: boolean }): Promise<XoCleanResult> {
  const VmBackupDirectory = await vmBackupDirectory()
  const warnings: string[] = []
  const infos: string[] = []
  const previous = (globalThis as Record<symbol, unknown>)[TRANSPORT]
  configure(log => {
    if (log.level >= (LEVELS['WARN'] ?? 40)) warnings.push(describe(`[${log.namespace}] ${log.message}`, log.data))
  })
  try {
    const { merge } = await VmBackupDirectory.cleanVm(handler, vmDir(vm), {
      ...opts,
      logWarn: (message, data) => warnings.push(describe(message, data)),
      logInfo: (message, data) => infos.push(describe(message, data)),
    })
    return { warnings, infos, merge }
  } finally {
    ;(globalThis as Record<symbol, unknown>)[TRANSPORT] = previous
  }
}

/** XO's delete of a restore point from its Restore view: the metadata, then the clean-up with `remove` */
export async function xoDeleteRestorePoint(handler: RemoteHandler, vm: string, metadataPath: string): Promise<XoCleanResult> {
  await handler.unlink(metadataPath)
  return xoCleanVm(handler, vm, { remove: true, merge: false })
}
