/**
 * `[NOBAK]` disks: a disk whose name starts with `[NOBAK]` (with or without a space after it) is
 * left out of the backup. The name is read at each run: renaming a disk takes effect at the
 * next one.
 */
import { excludeDisk } from '../context.js'
import type { BackupHook } from './hook.js'

export const NOBAK_TAG = '[NOBAK]'

export function isNobak(name: string): boolean {
  return name.startsWith(NOBAK_TAG)
}

export const excludeNobak: BackupHook = {
  step: 'selectDisks',
  name: 'exclude-nobak',
  run(ctx) {
    for (const disk of [...ctx.disks]) {
      if (isNobak(disk.vdi.name_label)) {
        excludeDisk(ctx, disk, `its name starts with ${NOBAK_TAG}`)
      }
    }
  },
}
