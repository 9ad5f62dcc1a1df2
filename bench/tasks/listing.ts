/** Listing measurements: ours (API path, DR CLI, retention pass) and reading the files plainly. */
import { spawn } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { performance } from 'node:perf_hooks'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { peakRssMiB } from '../lib/fs-utils.js'
import { openLocalHandler } from '../lib/handler.js'
import { loadOptional } from '../lib/optional.js'
import { plainListing } from './plain-listing.js'
import type { Task, TaskOutcome } from './protocol.js'

type ListingTask = Extract<Task, { kind: 'listing' }>
type ListRestorePoints = (handler: RemoteHandler) => Promise<unknown[]>
type ListBackedUpVms = (handler: RemoteHandler) => Promise<string[]>
type EnforceRetention = (
  handler: RemoteHandler,
  opts: { vm: string; jobId: string; keep: number },
) => Promise<{ removed: string[]; deleted: string[]; merges: unknown[] }>

const CLI = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url))
const PLAIN_LIST = fileURLToPath(new URL('../plain-list.js', import.meta.url))

/** runs a node program to its exit; its last output line is `<n> restore points` */
function countingProcess(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let tail = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => (tail = (tail + chunk.toString('utf8')).slice(-200)))
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')))
    child.on('error', reject)
    child.on('close', code => {
      const match = /(\d+) restore points?\s*$/.exec(tail)
      if (code !== 0 || match === null) reject(new Error(`${args.join(' ')} exited with ${code}: ${err.trim().slice(0, 300)}`))
      else resolve(Number(match[1]))
    })
  })
}

export async function measureListing(task: ListingTask): Promise<TaskOutcome> {
  const done = (start: number, points: number, removed = 0): TaskOutcome => ({
    ok: true,
    result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), detail: { points, removed } },
  })
  switch (task.impl) {
    case 'plain': {
      const start = performance.now()
      return done(start, (await plainListing(task.root)).length)
    }
    case 'plain-process': {
      const start = performance.now()
      return done(start, await countingProcess([PLAIN_LIST, task.root]))
    }
    case 'cli': {
      const start = performance.now()
      return done(start, await countingProcess([CLI, 'list', '--remote', pathToFileURL(task.root).href]))
    }
    case 'api': {
      const list = await loadOptional<ListRestorePoints>('src/repository/restore-points.ts', 'listRestorePointsWithStatus')
      if (!list.ok) return { ok: false, skipped: true, reason: list.reason }
      const opened = await openLocalHandler(task.root)
      try {
        const start = performance.now()
        return done(start, (await list.value(opened.handler)).length)
      } finally {
        await opened.dispose()
      }
    }
    case 'retention': {
      const retention = await loadOptional<EnforceRetention>('src/repository/retention.ts', 'enforceRetention')
      const vms = await loadOptional<ListBackedUpVms>('src/repository/restore-points.ts', 'listBackedUpVms')
      if (!retention.ok) return { ok: false, skipped: true, reason: retention.reason }
      if (!vms.ok) return { ok: false, skipped: true, reason: vms.reason }
      const opened = await openLocalHandler(task.root)
      try {
        const start = performance.now()
        let removed = 0
        for (const vm of await vms.value(opened.handler)) {
          const result = await retention.value(opened.handler, { vm, jobId: task.jobId, keep: task.keep })
          removed += result.removed.length + result.deleted.length + result.merges.length
        }
        const outcome = done(start, 0, removed)
        // what is left, counted after the timing
        const points = (await plainListing(task.root)).length
        return outcome.ok ? { ok: true, result: { ...outcome.result, detail: { points, removed } } } : outcome
      } finally {
        await opened.dispose()
      }
    }
  }
}
