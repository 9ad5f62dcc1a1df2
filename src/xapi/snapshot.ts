/**
 * Snapshots of a VM: taking one (leaving chosen disks out where XAPI allows it), blocking
 * migration during a backup as Xen Orchestra does, and destroying a snapshot with its disks.
 */
import type { Ref, XapiClient } from './client.js'
import { NULL_REF } from './client.js'
import { fetchVbd, fetchVm } from './records.js'
import { xapiErrorCode } from './xapi-error.js'

export interface TakenSnapshot {
  readonly ref: Ref
  /** false when the pool's `VM.snapshot` has no ignore list: the ignored disks were snapshotted too */
  readonly ignoreListSupported: boolean
}

/**
 * `VM.snapshot(vm, name, ignore_vdis)`; a XAPI without the third argument answers
 * `MESSAGE_PARAMETER_COUNT_MISMATCH` and is asked again with two.
 */
export async function snapshotVm(xapi: XapiClient, vm: Ref, name: string, ignoreVdis: readonly Ref[]): Promise<TakenSnapshot> {
  try {
    const ref = await xapi.callAsync<Ref>('VM.snapshot', vm, name, [...ignoreVdis])
    return { ref, ignoreListSupported: true }
  } catch (error) {
    if (xapiErrorCode(error) !== 'MESSAGE_PARAMETER_COUNT_MISMATCH') {
      throw error
    }
  }
  const ref = await xapi.callAsync<Ref>('VM.snapshot', vm, name)
  return { ref, ignoreListSupported: false }
}

/** the operations Xen Orchestra blocks on a VM while it is being backed up */
export const MIGRATION_OPERATIONS = ['pool_migrate', 'migrate_send'] as const
export const MIGRATION_BLOCKED_REASON = 'VM migration is blocked during backup'

/**
 * Blocks migration on a VM; resolves to the function that lifts exactly the blocks it added
 * (a block the user had set stays).
 */
export async function blockMigration(xapi: XapiClient, vm: Ref): Promise<() => Promise<void>> {
  const { blocked_operations: blocked } = await fetchVm(xapi, vm)
  const added: string[] = []
  for (const operation of MIGRATION_OPERATIONS) {
    if (blocked[operation] === undefined) {
      await xapi.call('VM.add_to_blocked_operations', vm, operation, MIGRATION_BLOCKED_REASON)
      added.push(operation)
    }
  }
  return async () => {
    for (const operation of added) {
      await xapi.call('VM.remove_from_blocked_operations', vm, operation)
    }
  }
}

export async function destroyVdi(xapi: XapiClient, vdi: Ref): Promise<void> {
  await xapi.callAsync('VDI.destroy', vdi)
}

/** destroys a snapshot VM and the disks attached to it (CD images are left alone) */
export async function destroySnapshot(xapi: XapiClient, snapshot: Ref): Promise<void> {
  const vm = await fetchVm(xapi, snapshot)
  const disks: Ref[] = []
  for (const vbdRef of vm.VBDs) {
    const vbd = await fetchVbd(xapi, vbdRef)
    if (vbd.type === 'Disk' && vbd.VDI !== NULL_REF) {
      disks.push(vbd.VDI)
    }
  }
  await xapi.callAsync('VM.destroy', snapshot)
  for (const vdi of disks) {
    try {
      await destroyVdi(xapi, vdi)
    } catch (error) {
      // a disk left out of the backup may already be gone
      if (xapiErrorCode(error) !== 'HANDLE_INVALID') {
        throw error
      }
    }
  }
}
