/**
 * Runs one merge in a child process and, on request, kills itself with SIGKILL right before
 * its Nth change to the remote (a write, rename, unlink...), so that the parent test can check
 * what an interruption at that exact point leaves behind.
 *
 * Environment: MERGE_REMOTE (local folder of the remote), MERGE_CHAIN (JSON array of VHD paths),
 * MERGE_KILL_BEFORE (1-based index of the change to die before; unset: run to completion).
 * Prints `{"changes": N, "log": [...]}` (the changes it made, each as `method path…`) when it completes.
 */
import { createRequire } from 'node:module'
import { mergeChain } from '../../src/repository/merge/index.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

const MUTATIONS = new Set(['write', 'writeFile', 'outputFile', 'rename', 'unlink', 'rmtree', 'truncate', 'outputStream'])

interface SyncedHandler {
  readonly value: RemoteHandler
  dispose(): Promise<void>
}
const xoFs = createRequire(import.meta.url)('@xen-orchestra/fs') as { getSyncedHandler(remote: { url: string }): Promise<SyncedHandler> }

function pathOf(file: unknown): string {
  return String(typeof file === 'object' && file !== null && 'path' in file ? (file as { path: unknown }).path : file)
}

function killingHandler(handler: RemoteHandler, killBefore: number | undefined, counter: { changes: number; log: string[] }): RemoteHandler {
  return new Proxy(handler, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property)
      if (typeof value !== 'function') {
        return value
      }
      return (...args: unknown[]) => {
        if (typeof property === 'string' && MUTATIONS.has(property)) {
          counter.changes++
          counter.log.push(`${property} ${args.slice(0, property === 'rename' ? 2 : 1).map(pathOf).join(' ')}`)
          if (counter.changes === killBefore) {
            process.kill(process.pid, 'SIGKILL')
          }
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    },
  })
}

async function main(): Promise<void> {
  const remote = process.env['MERGE_REMOTE']
  const chain = JSON.parse(process.env['MERGE_CHAIN'] ?? '[]') as string[]
  const killBefore = process.env['MERGE_KILL_BEFORE'] === undefined ? undefined : Number(process.env['MERGE_KILL_BEFORE'])
  const { value: handler, dispose } = await xoFs.getSyncedHandler({ url: `file://${remote}` })
  const counter = { changes: 0, log: [] as string[] }
  try {
    await mergeChain(killingHandler(handler, killBefore, counter), chain)
  } finally {
    await dispose()
  }
  process.stdout.write(JSON.stringify(counter) + '\n')
}

main().catch(error => {
  process.stderr.write(String((error as Error)?.stack ?? error) + '\n')
  process.exit(1)
})
