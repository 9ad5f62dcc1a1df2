/** Restore read: a chain read as one VHD stream. */
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import { peakRssMiB } from '../lib/fs-utils.js'
import { openLocalHandler } from '../lib/handler.js'
import { loadChainReader } from '../lib/optional.js'
import type { Task, TaskOutcome } from './protocol.js'

async function drain(stream: Readable): Promise<number> {
  let bytes = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) bytes += chunk.length
  return bytes
}

export async function measureReadChain(task: Extract<Task, { kind: 'read-chain' }>): Promise<TaskOutcome> {
  const reader = await loadChainReader()
  if (!reader.ok) return { ok: false, skipped: true, reason: reader.reason }
  const opened = await openLocalHandler(task.root)
  try {
    const start = performance.now()
    const { stream, length } = await reader.value(opened.handler, task.path)
    const bytes = await drain(stream)
    const ms = performance.now() - start
    if (bytes !== length) throw new Error(`the chain stream announced ${length} bytes and gave ${bytes}`)
    return { ok: true, result: { ms, peakRssMiB: peakRssMiB(), bytes } }
  } finally {
    await opened.dispose()
  }
}

