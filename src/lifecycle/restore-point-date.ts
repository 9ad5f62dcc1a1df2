/**
 * The date of a new restore point. Restore points and their VHDs are named by their UTC second:
 * a run takes the second after every name already in the VM's folder (its metadata and the VHDs
 * of every job), so it never overwrites a file, even one a crashed run left, and its VHDs sort
 * after every earlier one of their disk.
 */
import { parseTimestamp, timestampOfName, vmDir } from '../repository/layout.js'
import type { RemoteHandler } from '../repository/remote-handler.js'

async function namesIn(handler: RemoteHandler, dir: string): Promise<string[]> {
  return handler.list(dir, { ignoreMissing: true })
}

/** every file name of the VM's folder and of its disk folders */
async function usedNames(handler: RemoteHandler, vmUuid: string): Promise<string[]> {
  const root = vmDir(vmUuid)
  const names = await namesIn(handler, root)
  const vdis = `${root}/vdis`
  for (const job of await namesIn(handler, vdis)) {
    for (const disk of await namesIn(handler, `${vdis}/${job}`)) {
      names.push(...(await namesIn(handler, `${vdis}/${job}/${disk}`)))
    }
  }
  return names
}

export async function chooseRestorePointDate(handler: RemoteHandler, vmUuid: string, now: Date): Promise<Date> {
  let time = Math.floor(now.getTime() / 1000) * 1000
  for (const name of await usedNames(handler, vmUuid)) {
    const timestamp = timestampOfName(name)
    if (timestamp !== undefined) {
      time = Math.max(time, parseTimestamp(timestamp).getTime() + 1000)
    }
  }
  return new Date(time)
}
