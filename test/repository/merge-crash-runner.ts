/**
 * Runs `merge-crash-child.js` (a merge of `chain` on the local remote at `remote`) in a child
 * process that kills itself with SIGKILL before its `killBefore`-th change to the remote, or is
 * killed after `killAfterMs`; resolves with how it ended.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const CHILD = fileURLToPath(new URL('./merge-crash-child.js', import.meta.url))

export interface ChildOutcome {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export function runMergeChild(remote: string, chain: string[], opts: { killBefore?: number; killAfterMs?: number } = {}): Promise<ChildOutcome> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, MERGE_REMOTE: remote, MERGE_CHAIN: JSON.stringify(chain) }
    if (opts.killBefore !== undefined) {
      env['MERGE_KILL_BEFORE'] = String(opts.killBefore)
    }
    const child = spawn(process.execPath, [CHILD], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}
