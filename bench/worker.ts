/**
 * Worker process: runs the one measurement given as JSON in argv[2] and prints its outcome as the
 * last line of stdout. Failures are reported, not thrown, so that one case cannot stop the run.
 */
import { measureFloor, measureMerge } from './tasks/merge.js'
import type { Task, TaskOutcome } from './tasks/protocol.js'
import { measureReadChain, measureReadFile } from './tasks/read.js'
import { measureRawExport, measureRunJob } from './tasks/transfer.js'

async function run(task: Task): Promise<TaskOutcome> {
  switch (task.kind) {
    case 'floor':
      return measureFloor(task)
    case 'merge':
      return measureMerge(task)
    case 'read-chain':
      return measureReadChain(task)
    case 'read-file':
      return measureReadFile(task)
    case 'raw-export':
      return measureRawExport(task)
    case 'run-job':
      return measureRunJob(task)
  }
}

const task = JSON.parse(process.argv[2] ?? 'null') as Task
const outcome = await run(task).catch(
  (error: unknown): TaskOutcome => ({
    ok: false,
    skipped: false,
    // the message and where it was raised
    reason: `error: ${((error as Error).stack ?? String(error)).split('\n').slice(0, 2).join(' ').replace(/\s+/g, ' ')}`,
  }),
)
process.stdout.write(`\n${JSON.stringify(outcome)}\n`)
process.exit(0)
