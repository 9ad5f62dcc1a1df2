/**
 * A disk folder holding a merge state file (`.<full>.cd-merge.json`, or `.<full>.merge.json`) is in the middle of a merge:
 * part of the chain has already moved (a VHD directory's blocks renamed into the full's folder,
 * a VHD file full already carrying its newest child's UUID), so its restore points do not read
 * as they are. Such a merge is finished first, under the VM's chain lock, and only then is the
 * chain read. When it cannot be finished here, the read fails with `MERGE_PENDING`, saying how
 * to finish it.
 */
import { BackupError } from '../errors.js'
import { BACKUP_ROOT, isUuid, normalizePath } from '../repository/layout.js'
import { isReadOnlyError, withChainLock } from '../repository/lock.js'
import { resumeMerges } from '../repository/merge/index.js'
import { dirOf, listMergeStates, readMergeState } from '../repository/merge/state.js'
import type { RemoteHandler } from '../repository/remote-handler.js'

/** `finish`: finish a pending merge, then read; `fail`: never write, fail with MERGE_PENDING */
export type PendingMergePolicy = 'finish' | 'fail'

const HOW_TO_FINISH = 'the next backup run of its job finishes it, as does a restore with write access to the remote'

/** the VM uuid of a disk folder `xo-vm-backups/<vm>/vdis/<job>/<vdi>` */
function vmOfDiskDir(dir: string): string | undefined {
  const [root, vm, vdis] = dir.split('/')
  return root === BACKUP_ROOT && vm !== undefined && isUuid(vm) && vdis === 'vdis' ? vm : undefined
}

function pending(dir: string, why: string, cause?: unknown): BackupError {
  return new BackupError(
    'MERGE_PENDING',
    `an interrupted merge is pending in ${dir} and its restore points cannot be read until it is finished: ${why}`,
    { path: dir },
    cause === undefined ? undefined : { cause },
  )
}

/**
 * Makes the chain of `vhdPath` readable: finishes every interrupted merge of its disk folder
 * (under the VM's chain lock) or, with `policy: 'fail'` or when that is not possible, throws
 * `MERGE_PENDING`. Does nothing (and writes nothing) when no merge is pending.
 */
export async function finishPendingMerges(handler: RemoteHandler, vhdPath: string, policy: PendingMergePolicy = 'finish'): Promise<void> {
  const dir = dirOf(normalizePath(vhdPath))
  const states = await listMergeStates(handler, dir)
  if (states.length === 0) return
  if (policy === 'fail') throw pending(dir, `this read does not write to the remote; ${HOW_TO_FINISH}`)
  for (const statePath of states) {
    if ((await readMergeState(handler, statePath)) === 'foreign') {
      throw pending(dir, `${statePath} was written by Xen Orchestra's own merge; run the backup job in Xen Orchestra to finish it`)
    }
  }
  const vm = vmOfDiskDir(dir)
  if (vm === undefined) throw pending(dir, `the folder is not a disk folder of a VM backup, so its chain cannot be locked; ${HOW_TO_FINISH}`)
  try {
    await withChainLock(handler, vm, () => resumeMerges(handler, dir))
  } catch (error) {
    if (error instanceof BackupError && error.code === 'CHAIN_LOCKED') {
      throw pending(dir, `${error.message} (a backup run finishes the merge; the lock of a writer that died lapses within seconds, then retry)`, error)
    }
    if (isReadOnlyError(error)) {
      throw pending(dir, `the remote cannot be written here (${(error as { code?: string }).code ?? 'access denied'}); ${HOW_TO_FINISH}`, error)
    }
    if (error instanceof BackupError && error.code === 'CANCELLED') throw error
    throw pending(dir, `finishing it failed: ${(error as Error).message}`, error)
  }
}
