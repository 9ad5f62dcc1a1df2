/** The restore read baseline: a single file streamed as `cat` does. Plain `fs`, nothing else. */
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

/** 128 KiB reads, as coreutils `cat` does */
export async function measureReadFile(task: Extract<Task, { kind: 'read-file' }>): Promise<TaskOutcome> {
  const start = performance.now()
  const bytes = await drain(createReadStream(task.file, { highWaterMark: 128 * 1024 }))
  return { ok: true, result: { ms: performance.now() - start, peakRssMiB: peakRssMiB(), bytes } }
}
