/** `list`: the restore points on a remote, oldest first, grouped by VM. */
import { listRestorePoints } from '../../repository/restore-points.js'
import type { RestorePoint } from '../../repository/restore-points.js'
import { openRemote } from '../connect.js'
import { formatSize, printJson, printLine } from '../io.js'
import type { CliIo } from '../io.js'
import { EXIT_OK } from '../usage.js'

export interface ListOptions {
  readonly remote: string
  readonly vm?: string
  readonly json: boolean
}

function describeDisks(point: RestorePoint): string {
  return point.disks.map(disk => `${disk.name} (${disk.differencing ? 'delta' : 'full'})`).join(', ')
}

export async function listCommand(options: ListOptions, io: CliIo): Promise<number> {
  const remote = await openRemote(options.remote)
  try {
    const points = await listRestorePoints(remote.handler, options.vm === undefined ? {} : { vm: options.vm })
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
        printLine(io, `${vm === points[0]?.vm ? '' : '\n'}VM ${point.vmName} (${point.vm})`)
      }
      printLine(io, `  ${new Date(point.timestamp).toISOString()}  ${formatSize(point.size).padStart(10)}  ${describeDisks(point)}`)
      printLine(io, `      id: ${point.id}`)
      for (const excluded of point.excluded) printLine(io, `      not backed up: ${excluded.name} (${excluded.reason})`)
    }
    printLine(io, `\n${points.length} restore point${points.length === 1 ? '' : 's'}`)
    return EXIT_OK
  } finally {
    await remote.close()
  }
}
