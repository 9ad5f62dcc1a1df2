/**
 * `delete`: deletes one restore point from a remote, without xo-server, as the plugin's
 * `deleteRestorePoint` does (repository/delete.ts): the others stay restorable with their bytes,
 * what the deleted one alone held is merged into the next restore point; nothing is deleted when
 * that merge would meet damage.
 */
import { deleteRestorePoint } from '../../repository/delete.js'
import { openRemote } from '../connect.js'
import { printJson, printLine } from '../io.js'
import type { CliIo } from '../io.js'
import { EXIT_OK } from '../usage.js'

export interface DeleteOptions {
  readonly remote: string
  readonly restorePoint: string
  readonly json: boolean
}

export async function deleteCommand(options: DeleteOptions, io: CliIo): Promise<number> {
  const remote = await openRemote(options.remote)
  try {
    const result = await deleteRestorePoint(remote.handler, options.restorePoint, { signal: io.signal })
    if (options.json) {
      printJson(io, result)
      return EXIT_OK
    }
    printLine(io, `deleted ${result.restorePoint} (VM ${result.vm})`)
    for (const merge of result.merges) printLine(io, `  merged ${merge.blocks} block${merge.blocks === 1 ? '' : 's'} into ${merge.mergedPath}`)
    if (result.wasNewest) printLine(io, "  it was its job's newest restore point: the job's next run of this VM exports full disks")
    return EXIT_OK
  } finally {
    await remote.close()
  }
}
