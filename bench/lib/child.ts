/** Runs one measurement in a fresh worker process and returns its outcome. */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Task, TaskOutcome } from '../tasks/protocol.js'

const WORKER = fileURLToPath(new URL('../worker.js', import.meta.url))

export function runInWorker(task: Task, opts: { cpuProfileDir?: string } = {}): Promise<TaskOutcome> {
  const nodeArgs = opts.cpuProfileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`]
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, WORKER, JSON.stringify(task)], { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    child.on('error', reject)
    child.on('close', code => {
      const lines = Buffer.concat(out).toString('utf8').trim().split('\n')
      try {
        resolve(JSON.parse(lines[lines.length - 1]!) as TaskOutcome)
      } catch {
        const stderr = Buffer.concat(err).toString('utf8').trim().split('\n').slice(-5).join(' | ')
        resolve({ ok: false, skipped: false, reason: `worker exited with code ${code}: ${stderr}` })
      }
    })
  })
}
