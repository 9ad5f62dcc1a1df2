/** `GET /export_raw_vdi/`: a VDI as a streamed VHD (full or differencing against `base`) or raw bytes. */
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'

import { diskOfVdi, fail, type ServerDeps } from './http-deps.js'
import { exportRaw, exportVhd } from './vdi-export.js'
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

/**
 * The VDIs an export reads (the disk, and the base of a delta) are plugged into the control
 * domain while it runs; once it ends they stay in use for a while (PoolQuirks).
 */
function attachForExport(deps: ServerDeps, refsOrUuids: (string | null)[]): () => void {
  const attached: { vdi: string; vbd: string }[] = []
  for (const refOrUuid of refsOrUuids) {
    const vdi = refOrUuid === null ? undefined : deps.model.store.resolve('VDI', refOrUuid)
    if (vdi !== undefined) attached.push({ vdi, vbd: deps.model.attachToControlDomain(vdi) })
  }
  let released = false
  return () => {
    if (released) return
    released = true
    for (const { vdi, vbd } of attached) deps.model.exportEnded(vdi, vbd)
  }
}

export async function handleExport(deps: ServerDeps, query: URLSearchParams, res: ServerResponse): Promise<void> {
  const task = deps.tasks.pending(query.get('task_id') ?? undefined)
  let body: Readable | undefined
  let length = 0
  let release = (): void => {}
  res.once('close', () => release())
  try {
    const fault = deps.faults.takeFailure('export_raw_vdi')
    if (fault !== undefined) throw fault
    const disk = diskOfVdi(deps.model, query.get('vdi'))
    const format = query.get('format') ?? 'raw'
    const baseRef = format === 'vhd' ? query.get('base') : null
    const base = baseRef === null ? undefined : diskOfVdi(deps.model, baseRef)
    release = attachForExport(deps, [query.get('vdi'), baseRef])
    const html = deps.faults.takeHtmlAnswer()
    if (html !== undefined) {
      // XAPI's own bug (xen-api issue 4603): a 200 whose body is a whole HTTP error answer
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(html)
      release()
      if (task !== undefined) deps.tasks.succeed(task, '')
      return
    }
    if (format === 'vhd') {
      const vhd = await exportVhd(deps.model.files, disk, base)
      body = vhd
      length = vhd.length
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
    } else if (format === 'raw') {
      body = await exportRaw(deps.model.files, disk)
      length = disk.virtualSize
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': disk.virtualSize })
    } else {
      throw new XapiFault('FORMAT_NOT_SUPPORTED', [format])
    }
  } catch (error) {
    release()
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
    release()
    if (task !== undefined) deps.tasks.succeed(task, '')
  } catch (error) {
    body.destroy()
    release()
    fail(deps, res, task, error)
  }
}

