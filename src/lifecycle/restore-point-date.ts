/**
 * The date of a new restore point. Restore points are named by their UTC second: a run in the
 * same second as the newest restore point of the VM (or with a clock behind it) takes the second
 * after the newest one, so it never overwrites one and its VHDs sort after every earlier one.
 */
import { isMetadataName, parseTimestamp, timestampOfName, vmDir } from '../repository/layout.js'
import type { RemoteHandler } from '../repository/remote-handler.js'

export async function chooseRestorePointDate(handler: RemoteHandler, vmUuid: string, now: Date): Promise<Date> {
  let time = Math.floor(now.getTime() / 1000) * 1000
  for (const name of await handler.list(vmDir(vmUuid), { ignoreMissing: true })) {
    const timestamp = isMetadataName(name) ? timestampOfName(name) : undefined
    if (timestamp !== undefined) {
      time = Math.max(time, parseTimestamp(timestamp).getTime() + 1000)
    }
  }
  return new Date(time)
}
