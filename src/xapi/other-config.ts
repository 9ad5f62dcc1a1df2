/**
 * `other_config` entries on XAPI objects, and the `xo:backup:*` keys Xen Orchestra puts on the
 * snapshots of a backup (see docs/remote-format.md).
 */
import type { Ref, XapiClient } from './client.js'

export const BACKUP_KEYS = {
  datetime: 'xo:backup:datetime',
  job: 'xo:backup:job',
  schedule: 'xo:backup:schedule',
  vm: 'xo:backup:vm',
  deltaChainLength: 'xo:backup:deltaChainLength',
  exported: 'xo:backup:exported',
} as const

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

/** sets each entry, replacing an existing value (`add_to_other_config` refuses a duplicate key) */
export async function setOtherConfig(xapi: XapiClient, type: string, ref: Ref, entries: Record<string, string>): Promise<void> {
  for (const [key, value] of Object.entries(entries)) {
    await xapi.call(`${type}.remove_from_other_config`, ref, key)
    await xapi.call(`${type}.add_to_other_config`, ref, key, value)
  }
}
