/** `PUT /import_raw_vdi/`: a VHD (dynamic or differencing) or raw bytes written into a VDI. */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { PassThrough } from 'node:stream'

import { diskOfVdi, fail, type ServerDeps } from './http-deps.js'
import { importRaw, importVhd } from './vdi-import.js'
import { XapiFault } from './xapi-fault.js'

export async function handleImport(deps: ServerDeps, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const taskId = query.get('task_id') ?? undefined
  if (taskId === undefined && Number(req.headers['content-length'] ?? 0) === 0) {
    // the client's probe for a redirection before it sends the body
    req.resume()
    res.writeHead(200)
    return void res.end()
  }
  const task = deps.tasks.pending(taskId)
  try {
    const fault = deps.faults.takeFailure('import_raw_vdi')
    if (fault !== undefined) throw fault
    const disk = diskOfVdi(deps.model, query.get('vdi'))
    const format = query.get('format') ?? 'raw'
    if (format !== 'vhd' && format !== 'raw') throw new XapiFault('FORMAT_NOT_SUPPORTED', [format])

    // answered at once: a client that cannot announce the length stops sending on its own
    res.writeHead(200)
    res.flushHeaders()
    const body = new PassThrough()
    req.pipe(body)
    req.once('close', () => {
      if (!body.writableEnded) body.end()
    })
    try {
      if (format === 'vhd') await importVhd(deps.model.files, disk.uuid, disk.virtualSize, body)
      else await importRaw(deps.model.files, disk.uuid, disk.virtualSize, body)
    } catch (error) {
      // the answer is already under way: the failure is reported on the task, the body drained
      req.unpipe(body)
      req.resume()
      if (task !== undefined) deps.tasks.fail(task, error instanceof XapiFault ? error : new XapiFault('VDI_IO_ERROR', [String(error)]))
      if (!req.complete) await new Promise(resolve => req.once('close', resolve))
      return void res.end()
    }
    if (task !== undefined) deps.tasks.succeed(task, '')
    res.end()
  } catch (error) {
    req.resume()
    fail(deps, res, task, error)
  }
}

