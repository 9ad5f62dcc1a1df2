/** `GET /export_raw_vdi/`: a VDI as a streamed VHD (full or differencing against `base`) or raw bytes. */
import { createReadStream } from 'node:fs'
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'

import { diskOfVdi, fail, type ServerDeps } from './http-deps.js'
import { exportVhd } from './vdi-export.js'
import { XapiFault } from './xapi-fault.js'

/** Writes with backpressure; false once the client has gone. */
async function write(res: ServerResponse, chunk: Buffer): Promise<boolean> {
  if (res.destroyed) return false
  if (!res.write(chunk)) {
    await new Promise<void>(resolve => {
      const done = (): void => {
        res.off('drain', done).off('close', done)
        resolve()
      }
      res.on('drain', done).on('close', done)
    })
  }
  return !res.destroyed
}

/** Waits `ms`, or less if the client goes away meanwhile. */
async function stallUnlessClosed(res: ServerResponse, ms: number): Promise<void> {
  const closed = new AbortController()
  const onClose = (): void => closed.abort()
  res.once('close', onClose)
  try {
    await delay(ms, undefined, { signal: closed.signal })
  } catch {
    // the client left: the next write notices
  } finally {
    res.off('close', onClose)
  }
}

export async function handleExport(deps: ServerDeps, query: URLSearchParams, res: ServerResponse): Promise<void> {
  const task = deps.tasks.pending(query.get('task_id') ?? undefined)
  let body: Readable | undefined
  let length = 0
  try {
    const fault = deps.faults.takeFailure('export_raw_vdi')
    if (fault !== undefined) throw fault
    const disk = diskOfVdi(deps.model, query.get('vdi'))
    const format = query.get('format') ?? 'raw'
    if (format === 'vhd') {
      const baseRef = query.get('base')
      const vhd = await exportVhd(disk, baseRef === null ? undefined : diskOfVdi(deps.model, baseRef))
      body = vhd
      length = vhd.length
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
    } else if (format === 'raw') {
      body = createReadStream(disk.path)
      length = disk.virtualSize
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': disk.virtualSize })
    } else {
      throw new XapiFault('FORMAT_NOT_SUPPORTED', [format])
    }
  } catch (error) {
    return fail(deps, res, task, error)
  }

  let reported = 0
  const cutAfter = deps.faults.takeCut()
  let stall = deps.faults.takeStall()
  let sent = 0
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (cutAfter !== undefined && sent + chunk.length >= cutAfter) {
        await write(res, chunk.subarray(0, cutAfter - sent))
        throw new XapiFault('VDI_IO_ERROR', ['Device I/O errors'])
      }
      if (!(await write(res, chunk))) throw new XapiFault('VDI_IO_ERROR', ['client closed the connection'])
      sent += chunk.length
      if (task !== undefined && sent / length - reported >= 0.1) {
        reported = Math.floor((sent / length) * 10) / 10
        deps.tasks.progress(task, reported)
      }
      if (stall !== undefined) {
        await stallUnlessClosed(res, stall)
        stall = undefined
      }
    }
    res.end()
    if (task !== undefined) deps.tasks.succeed(task, '')
  } catch (error) {
    body.destroy()
    fail(deps, res, task, error)
  }
}

