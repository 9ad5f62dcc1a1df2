/**
 * `other_config` entries on XAPI objects, and the keys the snapshots of a backup carry (see
 * docs/remote-format.md): Xen Orchestra's `xo:backup:*` keys, except the job's.
 *
 * The job is named by our own key, `continuous-delta:job`, never by `xo:backup:job`: Xen
 * Orchestra's Backup → Health page lists every VM snapshot whose `xo:backup:job` names no XO
 * backup job as a "detached VM snapshot", with a delete button (xo-web `getLoneSnapshots`), and
 * deleting our reference snapshot there would cost the next run a full. Snapshots written by
 * earlier versions carry `xo:backup:job`: `snapshotJobId` still recognises them.
 */
import type { Ref, XapiClient } from './client.js'

export const BACKUP_KEYS = {
  datetime: 'xo:backup:datetime',
  /** ours: Xen Orchestra's Health page ignores it */
  job: 'continuous-delta:job',
  schedule: 'xo:backup:schedule',
  vm: 'xo:backup:vm',
  deltaChainLength: 'xo:backup:deltaChainLength',
  exported: 'xo:backup:exported',
} as const

/** the job key earlier versions wrote, Xen Orchestra's own: read, never written */
export const LEGACY_JOB_KEY = 'xo:backup:job'

/** the job a snapshot (VM or VDI) of ours belongs to, by our key or the one earlier versions wrote */
export function snapshotJobId(otherConfig: Readonly<Record<string, string>>): string | undefined {
  return otherConfig[BACKUP_KEYS.job] ?? otherConfig[LEGACY_JOB_KEY]
}

/** a key a backup puts on its snapshots (ours or Xen Orchestra's), not one of the VM's own */
export function isBackupKey(key: string): boolean {
  return key.startsWith('xo:backup:') || key === BACKUP_KEYS.job
}

/** XAPI's date form, UTC: `%Y%m%dT%H:%M:%SZ` (20261126T05:50:24Z) */
export function formatXapiDate(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/-/g, '')
}

export interface BackupTags {
  readonly date: Date
  readonly jobId: string
  readonly scheduleId: string
  readonly vmUuid: string
  readonly deltaChainLength: number
}

export function backupOtherConfig(tags: BackupTags): Record<string, string> {
  return {
    [BACKUP_KEYS.datetime]: formatXapiDate(tags.date),
    [BACKUP_KEYS.job]: tags.jobId,
    [BACKUP_KEYS.schedule]: tags.scheduleId,
    [BACKUP_KEYS.vm]: tags.vmUuid,
    [BACKUP_KEYS.deltaChainLength]: String(tags.deltaChainLength),
  }
}

/**
 * sets each entry, replacing an existing value (`add_to_other_config` refuses a duplicate key):
 * the keys at once (each map edit is atomic on XAPI), each key's removal before its addition
 */
export async function setOtherConfig(xapi: XapiClient, type: string, ref: Ref, entries: Record<string, string>): Promise<void> {
  const outcomes = await Promise.allSettled(
    Object.entries(entries).map(async ([key, value]) => {
      await xapi.call(`${type}.remove_from_other_config`, ref, key)
      await xapi.call(`${type}.add_to_other_config`, ref, key, value)
    }),
  )
  // every edit settled before a failure is told: none is left running under the caller's cleanup
  const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
  if (failed !== undefined) {
    throw failed.reason
  }
}
