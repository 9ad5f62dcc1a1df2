/** `list`: the restore points on a remote, oldest first, grouped by VM; damaged ones say why. */
import { listRestorePointsWithStatus } from '../../repository/restore-points.js'
import type { ListedRestorePoint } from '../../repository/restore-points.js'
import { openRemote } from '../connect.js'
import { formatSize, printJson, printLine } from '../io.js'
import type { CliIo } from '../io.js'
import { EXIT_OK } from '../usage.js'

export interface ListOptions {
  readonly remote: string
  readonly vm?: string
  readonly json: boolean
}

function describeDisks(point: ListedRestorePoint): string {
  return point.disks.map(disk => `${disk.name} (${disk.differencing ? 'delta' : 'full'})`).join(', ')
}

export async function listCommand(options: ListOptions, io: CliIo): Promise<number> {
  const remote = await openRemote(options.remote)
  try {
    const points = await listRestorePointsWithStatus(remote.handler, options.vm === undefined ? {} : { vm: options.vm })
    if (options.json) {
      printJson(io, points)
      return EXIT_OK
    }
    if (points.length === 0) {
      printLine(io, options.vm === undefined ? 'no restore points on this remote' : `no restore points of VM ${options.vm} on this remote`)
      return EXIT_OK
    }
    let vm: string | undefined
    for (const point of points) {
      if (point.vm !== vm) {
        vm = point.vm
        const name = points.find(other => other.vm === vm && other.vmName !== '')?.vmName ?? ''
        printLine(io, `${vm === points[0]?.vm ? '' : '\n'}VM ${name} (${point.vm})`)
      }
      const date = point.timestamp === 0 ? '(date unknown)'.padEnd(24) : new Date(point.timestamp).toISOString()
      printLine(io, `  ${date}  ${formatSize(point.size).padStart(10)}  ${point.status === 'damaged' ? 'DAMAGED  ' : ''}${describeDisks(point)}`)
      printLine(io, `      id: ${point.id}`)
      if (point.reason !== undefined) printLine(io, `      cannot be restored: ${point.reason}`)
      for (const excluded of point.excluded) printLine(io, `      not backed up: ${excluded.name} (${excluded.reason})`)
    }
    const damaged = points.filter(point => point.status === 'damaged').length
    printLine(io, `\n${points.length} restore point${points.length === 1 ? '' : 's'}${damaged === 0 ? '' : `, ${damaged} damaged`}`)
    return EXIT_OK
  } finally {
    await remote.close()
  }
}
