/**
 * Snapshots of a VM: taking one without chosen disks on every pool version, blocking migration
 * during a backup as Xen Orchestra does (and lifting the blocks a dead run left), and destroying
 * a snapshot with its disks in an order that never orphans one.
 */
import type { Ref, XapiClient, XapiRecord } from './client.js'
import { NULL_REF } from './client.js'
import { fetchVbd, fetchVm } from './records.js'
import { xapiErrorCode } from './xapi-error.js'

/** a drive left out of a snapshot: its VBD and the VDI it holds */
export interface IgnoredDrive {
  readonly vbd: Ref
  readonly vdi: Ref
}

export interface TakenSnapshot {
  readonly ref: Ref
  /**
   * how the ignored disks were left out: `ignore-list` (`VM.snapshot`'s third parameter, XCP-ng
   * and XenServer 8.3 on), `detached` (a halted VM on an older pool: their drives were removed
   * for the snapshot and put back), `snapshotted` (a running VM on an older pool: they were
   * snapshotted with the VM; the caller destroys those snapshots)
   */
  readonly ignoredBy: 'ignore-list' | 'detached' | 'snapshotted' | 'none'
}

/** the other_config key of a VDI whose drive is detached for a snapshot: the drive's record, to put back */
export const DETACHED_DRIVE_KEY = 'xo:continuous-delta:detached-vbd'

/** the fields of `VBD.create` */
const VBD_CREATE_FIELDS = [
  'VM',
  'VDI',
  'userdevice',
  'bootable',
  'mode',
  'type',
  'unpluggable',
  'empty',
  'other_config',
  'qos_algorithm_type',
  'qos_algorithm_params',
] as const

function vbdCreateRecord(vbd: Record<string, unknown>): Record<string, unknown> {
  const record: Record<string, unknown> = {}
  for (const field of VBD_CREATE_FIELDS) {
    if (vbd[field] !== undefined) {
      record[field] = vbd[field]
    }
  }
  return record
}

async function removeOtherConfigKey(xapi: XapiClient, type: string, ref: Ref, key: string): Promise<void> {
  await xapi.call(`${type}.remove_from_other_config`, ref, key)
}

/**
 * Puts back a drive detached for a snapshot; the VDI's note is removed once the drive exists.
 * `record` is what `VBD.create` takes.
 */
async function reattach(xapi: XapiClient, vdi: Ref, record: Record<string, unknown>): Promise<void> {
  await xapi.call('VBD.create', record)
  await removeOtherConfigKey(xapi, 'VDI', vdi, DETACHED_DRIVE_KEY)
}

/**
 * The drives a run detached and could not put back (the process died between the two): each VDI
 * of `vm` found with a note naming `vm` and no VBD on it gets its drive back. Returns how many.
 */
export async function reattachDetachedDrives(xapi: XapiClient, vm: Ref, vmUuid: string): Promise<number> {
  let count = 0
  for (const record of Object.values(xapi.objects?.all ?? {})) {
    if (record.$type !== 'VDI') {
      continue
    }
    const note = (record.other_config as Record<string, string> | undefined)?.[DETACHED_DRIVE_KEY]
    if (note === undefined) {
      continue
    }
    let parsed: { vm?: string; record?: Record<string, unknown> }
    try {
      parsed = JSON.parse(note) as typeof parsed
    } catch {
      continue
    }
    if (parsed.vm !== vmUuid || parsed.record === undefined) {
      continue
    }
    const vbds = await xapi.call<Ref[]>('VDI.get_VBDs', record.$ref)
    const attachedToVm = await Promise.all(vbds.map(async vbd => (await xapi.call<Ref>('VBD.get_VM', vbd)) === vm))
    if (attachedToVm.includes(true)) {
      await removeOtherConfigKey(xapi, 'VDI', record.$ref, DETACHED_DRIVE_KEY)
      continue
    }
    await reattach(xapi, record.$ref, { ...parsed.record, VM: vm, VDI: record.$ref })
    count++
  }
  return count
}

/**
 * A halted VM on a pool whose `VM.snapshot` has no ignore list: the drives of the ignored disks
 * are destroyed before the snapshot and created again after it, whatever happens (as Xen
 * Orchestra does). Each VDI carries a note of its drive meanwhile, so that a run killed in
 * between is undone by the next (`reattachDetachedDrives`); the VM cannot start meanwhile.
 */
async function snapshotWithDrivesDetached(
  xapi: XapiClient,
  vm: Ref,
  vmUuid: string,
  name: string,
  drives: readonly IgnoredDrive[],
  blockReason: string
): Promise<Ref> {
  const { blocked_operations: blocked } = await fetchVm(xapi, vm)
  const startBlocks = ['start', 'start_on'].filter(operation => blocked[operation] === undefined)
  for (const operation of startBlocks) {
    await xapi.call('VM.add_to_blocked_operations', vm, operation, blockReason)
  }
  const detached: { vdi: Ref; record: Record<string, unknown> }[] = []
  try {
    for (const drive of drives) {
      const record = vbdCreateRecord(await xapi.getRecord<Record<string, unknown>>('VBD', drive.vbd))
      await xapi.call('VDI.remove_from_other_config', drive.vdi, DETACHED_DRIVE_KEY)
      await xapi.call('VDI.add_to_other_config', drive.vdi, DETACHED_DRIVE_KEY, JSON.stringify({ vm: vmUuid, record }))
      await xapi.call('VBD.destroy', drive.vbd)
      detached.push({ vdi: drive.vdi, record })
    }
    return await xapi.callAsync<Ref>('VM.snapshot', vm, name)
  } finally {
    let first: unknown
    for (const { vdi, record } of detached) {
      try {
        await reattach(xapi, vdi, record)
      } catch (error) {
        first ??= error
      }
    }
    for (const operation of startBlocks) {
      await xapi.call('VM.remove_from_blocked_operations', vm, operation).catch((error: unknown) => {
        first ??= error
      })
    }
    if (first !== undefined) {
      // eslint-disable-next-line no-unsafe-finally
      throw first
    }
  }
}

/**
 * `VM.snapshot(vm, name, ignore_vdis)`. A XAPI without the third parameter answers
 * `MESSAGE_PARAMETER_COUNT_MISMATCH`; then a halted VM is snapshotted with the ignored drives
 * detached, a running one with them (their drives cannot be unplugged from a live guest).
 */
export async function snapshotVm(
  xapi: XapiClient,
  vm: { readonly $ref: Ref; readonly uuid: string; readonly power_state: string },
  name: string,
  ignored: readonly IgnoredDrive[],
  blockReason: string
): Promise<TakenSnapshot> {
  if (ignored.length === 0) {
    return { ref: await xapi.callAsync<Ref>('VM.snapshot', vm.$ref, name), ignoredBy: 'none' }
  }
  try {
    const ref = await xapi.callAsync<Ref>('VM.snapshot', vm.$ref, name, ignored.map(drive => drive.vdi))
    return { ref, ignoredBy: 'ignore-list' }
  } catch (error) {
    if (xapiErrorCode(error) !== 'MESSAGE_PARAMETER_COUNT_MISMATCH') {
      throw error
    }
  }
  if (vm.power_state === 'Halted') {
    return { ref: await snapshotWithDrivesDetached(xapi, vm.$ref, vm.uuid, name, ignored, blockReason), ignoredBy: 'detached' }
  }
  return { ref: await xapi.callAsync<Ref>('VM.snapshot', vm.$ref, name), ignoredBy: 'snapshotted' }
}

/** the operations Xen Orchestra blocks on a VM while it is being backed up */
export const MIGRATION_OPERATIONS = ['pool_migrate', 'migrate_send'] as const
/**
 * The reason our blocks carry, naming the job: a block with it is ours — left by a run of that
 * job that died if no run is under way (the job's runs hold the chain lock) — never the user's
 * nor Xen Orchestra's own (whose reason differs).
 */
export function blockReasonOf(jobId: string): string {
  return `VM migration is blocked during a continuous delta backup (job ${jobId})`
}

/**
 * Blocks migration on a VM for a run of `jobId`. A block carrying the job's reason was left by a
 * run that died: it is lifted first. Resolves to the function that lifts exactly the blocks
 * this run added (a block the user or another tool set stays); XAPI is asked to recompute the
 * VM's allowed operations after each change.
 */
export async function blockMigration(xapi: XapiClient, vm: Ref, jobId: string): Promise<{ lift: () => Promise<void>; stale: string[] }> {
  const reason = blockReasonOf(jobId)
  const { blocked_operations: blocked } = await fetchVm(xapi, vm)
  const stale = Object.entries(blocked)
    .filter(([, value]) => value === reason)
    .map(([operation]) => operation)
  for (const operation of stale) {
    await xapi.call('VM.remove_from_blocked_operations', vm, operation)
  }
  const added: string[] = []
  for (const operation of MIGRATION_OPERATIONS) {
    if (blocked[operation] === undefined || stale.includes(operation)) {
      await xapi.call('VM.add_to_blocked_operations', vm, operation, reason)
      added.push(operation)
    }
  }
  await xapi.call('VM.update_allowed_operations', vm)
  return {
    stale,
    lift: async () => {
      for (const operation of added) {
        await xapi.call('VM.remove_from_blocked_operations', vm, operation)
      }
      await xapi.call('VM.update_allowed_operations', vm)
    },
  }
}

/** destroys a VDI; one already gone counts as destroyed */
export async function destroyVdi(xapi: XapiClient, vdi: Ref): Promise<void> {
  try {
    await xapi.callAsync('VDI.destroy', vdi)
  } catch (error) {
    if (xapiErrorCode(error) !== 'HANDLE_INVALID') {
      throw error
    }
  }
}

/**
 * Destroys a snapshot VM and its disks (CD images are left alone): the disks first (all at once),
 * then the VM. A disk that cannot be destroyed (after the retries of the XAPI client) stops it: the snapshot
 * VM stays, still holding the disks left, and is found and destroyed by a later run. A disk is
 * never left without the snapshot that names it.
 */
export async function destroySnapshot(xapi: XapiClient, snapshot: Ref): Promise<void> {
  let vm
  try {
    vm = await fetchVm(xapi, snapshot)
  } catch (error) {
    if (xapiErrorCode(error) === 'HANDLE_INVALID') {
      return
    }
    throw error
  }
  // the disks are destroyed at once: each may have to wait until the pool released it after an
  // export (the retry layer's back-off), and those waits need not add up
  const destroyed = await Promise.allSettled(
    vm.VBDs.map(async vbdRef => {
      let vbd
      try {
        vbd = await fetchVbd(xapi, vbdRef)
      } catch (error) {
        if (xapiErrorCode(error) === 'HANDLE_INVALID') {
          return
        }
        throw error
      }
      if (vbd.type === 'Disk' && vbd.VDI !== NULL_REF) {
        await destroyVdi(xapi, vbd.VDI)
      }
    }),
  )
  const failed = destroyed.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected')
  if (failed !== undefined) {
    throw failed.reason
  }
  try {
    await xapi.callAsync('VM.destroy', snapshot)
  } catch (error) {
    if (xapiErrorCode(error) !== 'HANDLE_INVALID') {
      throw error
    }
  }
}

/** the records of the client's cache of one type */
export function cachedRecords(xapi: XapiClient, type: string): XapiRecord[] {
  return Object.values(xapi.objects?.all ?? {}).filter(record => record.$type === type)
}
