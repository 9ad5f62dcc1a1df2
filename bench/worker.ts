/**
 * Worker process: runs the one measurement given as JSON in argv[2] and prints its outcome as the
 * last line of stdout. Failures are reported, not thrown, so that one case cannot stop the run.
 */
import type { Task, TaskOutcome } from './tasks/protocol.js'

// each task loads only what it uses: the baselines' peak RSS holds no product or remote code

async function run(task: Task): Promise<TaskOutcome> {
  switch (task.kind) {
    case 'floor':
      return (await import('./tasks/floor.js')).measureFloor(task)
    case 'merge':
      return (await import('./tasks/merge.js')).measureMerge(task)
    case 'read-chain':
      return (await import('./tasks/read.js')).measureReadChain(task)
    case 'read-file':
      return (await import('./tasks/read-file.js')).measureReadFile(task)
    case 'raw-export':
      return (await import('./tasks/transfer.js')).measureRawExport(task)
    case 'listing':
      return (await import('./tasks/listing.js')).measureListing(task)
    case 'run-job':
      return (await import('./tasks/transfer.js')).measureRunJob(task)
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
