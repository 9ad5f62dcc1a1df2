/**
 * Restores a whole VM from a restore point onto an SR. Needs nothing but the remote and a pool:
 * the original VM, its snapshots and its SR may be gone.
 *
 * 1. read the restore point's metadata; finish any merge a crash left pending in its disks' folders;
 * 2. create the VM from the stored record, named `<name> (<date of the restore point>)`, tagged
 *    `restored from backup`, its start blocked until the user allows it;
 * 3. per backed-up disk: create a VDI of the disk's virtual size on the SR, upload the chain
 *    ending at the restore point's VHD as one VHD stream, attach it with its device number and
 *    bootable flag;
 * 4. recreate the network interfaces with their MACs, each on the same network (by uuid, by
 *    name, else the pool's default);
 * 5. report the disks the restore point does not hold (left out of the backup, e.g. `[NOBAK]`).
 * Every block uploaded is checked against the checksums recorded when its VHD was written: a
 * damaged block fails the restore (DATA_DAMAGED, naming the VHD, the block and the restore point);
 * with `allowDamaged` the restore goes on and lists the damaged blocks.
 * A restore that fails destroys what it created.
 */
import { BackupError } from '../errors.js'
import type { RunReporter } from '../lifecycle/job.js'
import { formatTimestamp, resolveFromVmDir } from '../repository/layout.js'
import { readMetadata } from '../repository/metadata.js'
import type { BackupMetadata } from '../repository/metadata.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import { importVhdIntoVdi } from '../xapi/import-vdi.js'
import { xapiErrorCode } from '../xapi/xapi-error.js'
import { vbdCreateRecord, vdiCreateRecord, vifCreateRecord, vmCreateRecord } from './create-records.js'
import { findNetwork } from './network-map.js'
import { finishPendingMerges } from './pending-merge.js'
import { quietReporter } from './quiet-reporter.js'
import { openChainVhdStream, type ChainDamage } from './read-chain.js'
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
  /** restore even when blocks are damaged: the data as it is on the remote, the damage listed in the result */
  readonly allowDamaged?: boolean
}

export interface MissingDisk {
  readonly vdi: string
  readonly name: string
  readonly reason: string
}

export interface RestoreVmResult {
  /** uuid of the new VM */
  readonly vm: string
  readonly missingDisks: readonly MissingDisk[]
  /** with `allowDamaged`: what was restored damaged (empty when nothing was) */
  readonly damaged: readonly ChainDamage[]
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
    await importVhdIntoVdi(xapi, vdi, chain)
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

export async function restoreVm(opts: RestoreVmOptions): Promise<RestoreVmResult> {
  const { xapi, handler, signal } = opts
  const reporter = opts.reporter ?? quietReporter
  const metadata = await readMetadata(handler, opts.restorePoint)
  const sr = await srRefOf(xapi, opts.sr)
  // a merge a crash left pending is finished (or reported) before anything is created
  for (const disk of disksOf(metadata)) {
    throwIfAborted(signal)
    await finishPendingMerges(handler, disk.vhd)
  }
  throwIfAborted(signal)

  const undo = new UndoList()
  try {
    const vm = await xapi.call<Ref>('VM.create', vmCreateRecord(metadata.vm, formatTimestamp(new Date(metadata.timestamp))))
    undo.push('VM', () => xapi.callAsync('VM.destroy', vm))

    const damaged: ChainDamage[] = []
    for (const disk of disksOf(metadata)) {
      throwIfAborted(signal)
      await restoreDisk(opts, disk, vm, sr, undo, reporter, damaged)
    }

    for (const vif of Object.values(metadata.vifs)) {
      const network = await findNetwork(xapi, { uuid: vif.$network$uuid, name: vif.$network$name_label })
      if (network.matchedBy !== 'uuid') {
        reporter.warning(`interface ${String(vif.device)} (${String(vif.MAC)}) put on the network found by ${network.matchedBy}`, {
          network: vif.$network$uuid,
        })
      }
      await xapi.call('VIF.create', vifCreateRecord(vif, vm, network.ref))
    }

    const missingDisks = (metadata.continuousDelta?.excluded ?? []).map(({ vdi, name, reason }) => ({ vdi, name, reason }))
    for (const disk of missingDisks) {
      reporter.warning(`disk "${disk.name}" is not in this restore point: ${disk.reason}`, { vdi: disk.vdi })
    }
    const uuid = await xapi.call<string>('VM.get_uuid', vm)
    reporter.info(`VM restored from ${opts.restorePoint}`, { vm: uuid })
    if (damaged.length > 0) reporter.warning(`restored with ${damaged.length} damaged block(s) or VHD(s), as asked (allowDamaged)`)
    return { vm: uuid, missingDisks, damaged }
  } catch (error) {
    for (const failed of await undo.run()) {
      reporter.warning(`could not remove the restored ${failed.what}: ${failed.error instanceof Error ? failed.error.message : String(failed.error)}`)
    }
    throw error
  }
}
