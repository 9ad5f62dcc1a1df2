/**
 * Restores a whole VM from a restore point onto an SR. Needs nothing but the remote and a pool:
 * the original VM, its snapshots and its SR may be gone.
 *
 * 1. read the restore point's metadata; finish any merge a crash left pending in its disks' folders;
 * 2. create the VM from the stored record with the fields XAPI's `VM.create` takes (platform,
 *    firmware, NVRAM, domain type...), named `<name> (<date of the restore point>)`, tagged
 *    `restored from backup`, its start blocked until the user allows it; then its BIOS strings
 *    (`VM.set_bios_strings`);
 * 3. per backed-up disk: create a VDI of the disk's virtual size on the SR, upload the chain
 *    ending at the restore point's VHD as one VHD stream, attach it with its device number and
 *    bootable flag; then its CD drives, empty;
 * 4. recreate the network interfaces with their MACs (or new ones, `newMacAddresses`), each on
 *    the same network (by uuid; else on its VLAN by name, else the VLAN's first network; else
 *    the pool's default);
 * 5. recreate its vTPM with the contents backed up;
 * 6. report the disks the restore point does not hold (left out of the backup, e.g. `[NOBAK]`),
 *    and what of the VM this pool's version cannot hold (a vTPM before XCP-ng 8.3, NVRAM,
 *    BIOS strings before 7.3): never lost silently.
 * Every block uploaded is checked against the checksums recorded when its VHD was written: a
 * damaged block fails the restore (DATA_DAMAGED, naming the VHD, the block and the restore point);
 * with `allowDamaged` the restore goes on and lists the damaged blocks.
 * A restore that fails destroys what it created.
 */
import { BackupError } from '../errors.js'
import type { RunReporter } from '../lifecycle/job.js'
import { posix } from 'node:path'
import { formatTimestamp, normalizePath, resolveFromVmDir } from '../repository/layout.js'
import { readMetadata } from '../repository/metadata.js'
import type { BackupMetadata } from '../repository/metadata.js'
import { withChainReadLock, type ReadLockOptions } from '../repository/lock.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import { importVhdIntoVdi } from '../xapi/import-vdi.js'
import { withTransientRetry, type RetryPolicy } from '../xapi/retry.js'
import { xapiErrorCode } from '../xapi/xapi-error.js'
import {
  cdDriveCreateRecord,
  fieldsThePoolDropped,
  settableBiosStrings,
  vbdCreateRecord,
  vdiCreateRecord,
  vifCreateRecord,
  vmCreateRecord,
} from './create-records.js'
import { findNetwork } from './network-map.js'
import { finishPendingMerges } from './pending-merge.js'
import { quietReporter } from './quiet-reporter.js'
import { openChainVhdStream, type ChainDamage } from './read-chain.js'
import { withProgress } from './progress-stream.js'
import { UndoList } from './undo-list.js'

export interface RestoreVmOptions {
  readonly handler: RemoteHandler
  /** the restore point's id: its metadata path from the remote root */
  readonly restorePoint: string
  readonly xapi: XapiClient
  /** uuid of the SR that receives the disks */
  readonly sr: string
  readonly reporter?: RunReporter
  readonly signal?: AbortSignal
  /** how transient XAPI errors are retried (default `DEFAULT_RETRY_POLICY`) */
  readonly xapiRetry?: Partial<RetryPolicy>
  /** restore even when blocks are damaged: the data as it is on the remote, the damage listed in the result */
  readonly allowDamaged?: boolean
  /** new MAC addresses for the VM's interfaces instead of those it had (a copy beside the original) */
  readonly newMacAddresses?: boolean
  /**
   * how long to wait for a backup run (or its merge) holding the VM's chains before refusing with
   * CHAIN_LOCKED, and how (tests drive the pace); default 15 minutes
   */
  readonly lock?: ReadLockOptions
}

export interface MissingDisk {
  readonly vdi: string
  readonly name: string
  readonly reason: string
}

export interface RestoreVmResult {
  /** uuid of the new VM */
  readonly vm: string
  /** its XAPI reference */
  readonly ref: Ref
  readonly missingDisks: readonly MissingDisk[]
  /** with `allowDamaged`: what was restored damaged (empty when nothing was) */
  readonly damaged: readonly ChainDamage[]
  /**
   * what the VM had and this pool cannot hold (a vTPM, NVRAM, BIOS strings on older versions),
   * each also said in a warning; empty when the whole VM came back
   */
  readonly notRestored: readonly string[]
}

async function srRefOf(xapi: XapiClient, uuid: string): Promise<Ref> {
  try {
    return await xapi.call<Ref>('SR.get_by_uuid', uuid)
  } catch (error) {
    const code = xapiErrorCode(error)
    if (code === 'UUID_INVALID' || code === 'HANDLE_INVALID') {
      throw new BackupError('SR_NOT_FOUND', `no SR ${uuid} on this pool`, { sr: uuid }, { cause: error })
    }
    throw error
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new BackupError('CANCELLED', 'the restore was cancelled')
  }
}

/** the backed-up disks of a restore point, in device order */
function disksOf(metadata: BackupMetadata) {
  const disks = Object.entries(metadata.vdis).flatMap(([ref, vdi]) => {
    const vhd = metadata.vhds[ref]
    const vbd = Object.values(metadata.vbds).find(candidate => candidate.VDI === ref)
    return vhd === undefined || vbd === undefined ? [] : [{ ref, vdi, vbd, vhd: resolveFromVmDir(metadata.vm.uuid, vhd) }]
  })
  return disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
}

async function restoreDisk(
  opts: RestoreVmOptions,
  disk: ReturnType<typeof disksOf>[number],
  vm: Ref,
  sr: Ref,
  undo: UndoList,
  reporter: RunReporter,
  damaged: ChainDamage[]
): Promise<void> {
  const { xapi, handler, signal } = opts
  const name = disk.vdi.name_label
  const child = reporter.child(`disk "${name}"`, { vdi: disk.vdi.$snapshot_of$uuid, vhd: disk.vhd })
  const chain = await openChainVhdStream(handler, disk.vhd, {
    restorePoint: opts.restorePoint,
    allowDamaged: opts.allowDamaged === true,
    onDamage: damage => {
      damaged.push(damage)
      child.warning(`restored damaged: ${damage.block === undefined ? '' : `block ${damage.block} of `}${damage.vhd}: ${damage.reason}`, { vhd: damage.vhd })
    },
  })
  // the stream's own error (a damaged block) is the reason the upload fails, whatever the upload says
  let streamError: unknown
  chain.stream.once('error', error => void (streamError ??= error))
  const abort = (): void => void chain.stream.destroy(new BackupError('CANCELLED', 'the restore was cancelled'))
  signal?.addEventListener('abort', abort, { once: true })
  try {
    throwIfAborted(signal)
    const vdi = await xapi.call<Ref>('VDI.create', vdiCreateRecord(disk.vdi, sr, disk.vdi.virtual_size))
    undo.push(`disk "${name}"`, () => xapi.callAsync('VDI.destroy', vdi))
    // the disk's progress: the bytes of its VHD stream uploaded so far
    await importVhdIntoVdi(xapi, vdi, { stream: withProgress(chain.stream, chain.length, percent => child.progress(Math.min(99, percent))), length: chain.length })
    await xapi.call('VBD.create', vbdCreateRecord(disk.vbd, vm, vdi))
    child.end({ status: 'success', data: { size: chain.length } })
  } catch (caught) {
    const error = streamError instanceof BackupError ? streamError : caught
    chain.stream.destroy()
    child.end({ status: 'failure', error: error instanceof Error ? error : new Error(String(error)) })
    throw error
  } finally {
    signal?.removeEventListener('abort', abort)
  }
}

/**
 * What `VM.create` does not take: the BIOS strings (`VM.set_bios_strings`, XenServer 7.3 on);
 * and what it took but this pool's version dropped (NVRAM before 8.0, domain_type before 7.5).
 */
async function restoreFirmware(xapi: XapiClient, vm: Ref, metadata: BackupMetadata, sent: Record<string, unknown>, reporter: RunReporter, lost: string[]) {
  const created = await xapi.getRecord<Record<string, unknown>>('VM', vm)
  for (const field of fieldsThePoolDropped(sent, created)) {
    lost.push(field)
    reporter.warning(`the VM's ${field === 'NVRAM' ? 'NVRAM (UEFI variables, Secure Boot keys)' : field} could not be restored: this pool's version has no VM.${field}`, { field })
  }
  const biosStrings = settableBiosStrings(metadata.vm.bios_strings)
  if (biosStrings === undefined) return
  try {
    await xapi.call('VM.set_bios_strings', vm, biosStrings)
  } catch (error) {
    if (xapiErrorCode(error) !== 'MESSAGE_METHOD_UNKNOWN') throw error
    lost.push('bios_strings')
    reporter.warning(
      `the VM's BIOS strings could not be restored (${Object.entries(biosStrings).map(([key, value]) => `${key}=${value}`).join(', ')}): this pool has no VM.set_bios_strings (XenServer 7.3 and later); the VM gets the pool's own`,
      { field: 'bios_strings' }
    )
  }
}

/** each vTPM back with its contents (XCP-ng 8.3 on); elsewhere a warning: the VM comes back without it */
async function restoreVtpms(xapi: XapiClient, vm: Ref, metadata: BackupMetadata, reporter: RunReporter, lost: string[]) {
  for (const contents of metadata.vtpms) {
    if (contents === null) {
      lost.push('vTPM')
      reporter.warning('the VM had a vTPM whose contents could not be read at backup time: it is restored without it')
      continue
    }
    try {
      const vtpm = await xapi.call<Ref>('VTPM.create', vm, false)
      await xapi.call('VTPM.set_contents', vtpm, contents)
    } catch (error) {
      if (xapiErrorCode(error) !== 'MESSAGE_METHOD_UNKNOWN') throw error
      lost.push('vTPM')
      reporter.warning(
        "the VM had a vTPM and this pool has none (vTPM needs XCP-ng 8.3 or later): the VM is restored WITHOUT its TPM, so what its guest sealed there (BitLocker keys, measured boot) is not available to it; the TPM's contents stay in the restore point: restore on a pool with vTPM to keep them"
      )
    }
  }
}

export async function restoreVm(options: RestoreVmOptions): Promise<RestoreVmResult> {
  // every XAPI call of the restore goes through the one retry layer
  const opts = { ...options, xapi: withTransientRetry(options.xapi, options.xapiRetry) }
  const { xapi, handler, signal } = opts
  const reporter = opts.reporter ?? quietReporter
  const disks = disksOf(await readMetadata(handler, opts.restorePoint))
  const sr = await srRefOf(xapi, opts.sr)
  const folder = posix.basename(posix.dirname(normalizePath(opts.restorePoint)))
  const lock = { ...opts.lock, ...(signal === undefined ? {} : { signal }) }
  // a backup run holding the chains is waited for first: its merge in progress is no leftover
  await withChainReadLock(handler, folder, async () => {}, lock)
  // a merge a crash left pending is finished (or reported) before anything is created
  for (const disk of disks) {
    throwIfAborted(signal)
    await finishPendingMerges(handler, disk.vhd)
  }
  throwIfAborted(signal)
  // from here to the end, no backup run, merge or deletion changes the VM's chains (it waits for
  // one in progress): the restore reads its restore point as it is, or refuses
  return withChainReadLock(handler, folder, () => restoreLocked(opts, sr, reporter), lock)
}

async function restoreLocked(opts: RestoreVmOptions, sr: Ref, reporter: RunReporter): Promise<RestoreVmResult> {
  const { xapi, handler, signal } = opts
  let metadata: BackupMetadata
  try {
    metadata = await readMetadata(handler, opts.restorePoint)
  } catch (error) {
    if (error instanceof BackupError && error.code === 'RESTORE_POINT_NOT_FOUND') {
      throw new BackupError(
        'RESTORE_POINT_NOT_FOUND',
        `restore point ${opts.restorePoint} no longer exists: the retention of a backup run that held its chain removed it while this restore waited; nothing was restored`,
        { restorePoint: opts.restorePoint },
        { cause: error },
      )
    }
    throw error
  }
  const undo = new UndoList()
  try {
    const record = vmCreateRecord(metadata.vm, formatTimestamp(new Date(metadata.timestamp)), { newMacAddresses: opts.newMacAddresses === true })
    const vm = await xapi.call<Ref>('VM.create', record)
    undo.push('VM', () => xapi.callAsync('VM.destroy', vm))
    const notRestored: string[] = []
    await restoreFirmware(xapi, vm, metadata, record, reporter, notRestored)

    const damaged: ChainDamage[] = []
    for (const disk of disksOf(metadata)) {
      throwIfAborted(signal)
      await restoreDisk(opts, disk, vm, sr, undo, reporter, damaged)
    }

    for (const drive of metadata.continuousDelta?.cdDrives ?? []) {
      await xapi.call('VBD.create', cdDriveCreateRecord(drive, vm))
    }

    for (const vif of Object.values(metadata.vifs)) {
      const vlan = typeof vif.$network$VLAN === 'number' ? { vlan: vif.$network$VLAN } : {}
      const network = await findNetwork(xapi, { uuid: vif.$network$uuid, name: vif.$network$name_label, ...vlan })
      if (network.matchedBy !== 'uuid') {
        const how = network.matchedBy === 'vlan' ? `found by its VLAN (${String(vif.$network$VLAN)})` : `found by ${network.matchedBy}`
        reporter.warning(`interface ${String(vif.device)} (${String(vif.MAC)}) put on the network ${how}: network ${vif.$network$uuid} is not on this pool`, {
          network: vif.$network$uuid,
        })
      }
      await xapi.call('VIF.create', vifCreateRecord(vif, vm, network.ref, opts.newMacAddresses === true))
    }

    await restoreVtpms(xapi, vm, metadata, reporter, notRestored)

    const missingDisks = (metadata.continuousDelta?.excluded ?? []).map(({ vdi, name, reason }) => ({ vdi, name, reason }))
    for (const disk of missingDisks) {
      reporter.warning(`disk "${disk.name}" is not in this restore point: ${disk.reason}`, { vdi: disk.vdi })
    }
    const uuid = await xapi.call<string>('VM.get_uuid', vm)
    reporter.info(`VM restored from ${opts.restorePoint}`, { vm: uuid })
    if (damaged.length > 0) reporter.warning(`restored with ${damaged.length} damaged block(s) or VHD(s), as asked (allowDamaged)`)
    return { vm: uuid, ref: vm, missingDisks, damaged, notRestored }
  } catch (error) {
    for (const failed of await undo.run()) {
      reporter.warning(`could not remove the restored ${failed.what}: ${failed.error instanceof Error ? failed.error.message : String(failed.error)}`)
    }
    throw error
  }
}
