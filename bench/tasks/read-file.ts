/**
 * The restore read baselines: a single file streamed as `cat` does (plain `fs`, nothing else);
 * and the same file read in blocks, each hashed as it passes (the least a reader that checks
 * every block on its own thread costs).
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import { peakRssMiB } from '../lib/fs-utils.js'
import type { Task, TaskOutcome } from './protocol.js'

async function drain(stream: Readable): Promise<number> {
  let bytes = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) bytes += chunk.length
  return bytes
}

async function drainHashing(stream: Readable): Promise<number> {
  let bytes = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    createHash('sha256').update(chunk).digest()
    bytes += chunk.length
  }
  return bytes
}

/** 128 KiB reads, as coreutils `cat` does; with `checkBlock`, reads of one block, each hashed */
export async function measureReadFile(task: Extract<Task, { kind: 'read-file' }>): Promise<TaskOutcome> {
  const start = performance.now()
  const bytes =
    task.checkBlock === undefined
      ? await drain(createReadStream(task.file, { highWaterMark: 128 * 1024 }))
      : await drainHashing(createReadStream(task.file, { highWaterMark: task.checkBlock }))
  return { ok: true, result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), bytes } }
}
