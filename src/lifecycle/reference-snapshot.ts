/**
 * The reference snapshot of a job: the snapshot of the VM, kept on the SR, that the job's newest
 * restore point was exported from. The next run exports only what changed since it. Snapshots
 * are recognised by their job (`snapshotJobId`: our `continuous-delta:job` key, or the
 * `xo:backup:job` key earlier versions wrote) and their `xo:backup:vm` tag.
 */
import type { Ref, XapiClient } from '../xapi/client.js'
import { BACKUP_KEYS, snapshotJobId } from '../xapi/other-config.js'
import { fetchVm, refOfUuid } from '../xapi/records.js'
import { withTransientRetry, type RetryPolicy } from '../xapi/retry.js'
import { destroySnapshot } from '../xapi/snapshot.js'
import type { VmRecord } from '../xapi/records.js'

/** the job's snapshots of a VM, newest first */
export async function jobSnapshots(xapi: XapiClient, vm: VmRecord, jobId: string): Promise<VmRecord[]> {
  const snapshots: VmRecord[] = []
  for (const ref of vm.snapshots) {
    const snapshot = await fetchVm(xapi, ref)
    if (snapshotJobId(snapshot.other_config) === jobId && snapshot.other_config[BACKUP_KEYS.vm] === vm.uuid) {
      snapshots.push(snapshot)
    }
  }
  const dateOf = (snapshot: VmRecord): string => snapshot.other_config[BACKUP_KEYS.datetime] ?? snapshot.snapshot_time
  return snapshots.sort((a, b) => (dateOf(a) < dateOf(b) ? 1 : dateOf(a) > dateOf(b) ? -1 : 0))
}

export function isExported(snapshot: VmRecord): boolean {
  return snapshot.other_config[BACKUP_KEYS.exported] === 'true'
}

/** the newest exported snapshot of the job; else the newest one (which then cannot be a base) */
export async function findReferenceSnapshot(xapi: XapiClient, vm: VmRecord, jobId: string, except?: Ref): Promise<VmRecord | undefined> {
  const snapshots = (await jobSnapshots(xapi, vm, jobId)).filter(snapshot => snapshot.$ref !== except)
  return snapshots.find(isExported) ?? snapshots[0]
}

/**
 * Destroys every snapshot of the job of the VM (the job is deleted, or the VM forgotten); their
 * names. An entry point, like a run and a restore: its XAPI calls go through the retry layer.
 */
export async function destroyJobSnapshots(client: XapiClient, vmUuid: string, jobId: string, retry?: RetryPolicy): Promise<string[]> {
  const xapi = withTransientRetry(client, retry)
  const vm = await fetchVm(xapi, await refOfUuid(xapi, 'VM', vmUuid))
  const destroyed: string[] = []
  for (const snapshot of await jobSnapshots(xapi, vm, jobId)) {
    await destroySnapshot(xapi, snapshot.$ref)
    destroyed.push(snapshot.name_label)
  }
  return destroyed
}
