/**
 * The pool's HTTP face: JSON-RPC at `/jsonrpc`, disk export at `GET /export_raw_vdi/` and disk
 * import at `PUT /import_raw_vdi/`, all authenticated by a session.
 */
import { createReadStream } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { PassThrough, type Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'

import type { ArmedFaults } from './faults.js'
import type { PoolModel } from './pool-model.js'
import type { RpcDispatcher } from './rpc.js'
import type { Tasks } from './tasks.js'
import { exportVhd, type ExportedDisk } from './vdi-export.js'
import { importRaw, importVhd } from './vdi-import.js'
import { handleInvalid, XapiFault } from './xapi-fault.js'

export interface ServerDeps {
  readonly model: PoolModel
  readonly rpc: RpcDispatcher
  readonly tasks: Tasks
  readonly faults: ArmedFaults
}

const MAX_RPC_BODY = 64 * 1024 * 1024

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_RPC_BODY) throw new Error('request too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body)
  // exactly `application/json`: any parameter makes the xen-api client fall back to XML-RPC
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

async function handleJsonRpc(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let id: unknown = null
  try {
    const request = JSON.parse(await readBody(req)) as { id?: unknown; method?: unknown; params?: unknown }
    id = request.id ?? null
    if (typeof request.method !== 'string') throw new XapiFault('MESSAGE_METHOD_UNKNOWN', [String(request.method)])
    const params = Array.isArray(request.params) ? (request.params as unknown[]) : []
    const result = await deps.rpc.call(request.method, params)
    sendJson(res, { jsonrpc: '2.0', id, result: result ?? '' })
  } catch (error) {
    const fault = error instanceof XapiFault ? error : new XapiFault('INTERNAL_ERROR', [String(error)])
    sendJson(res, { jsonrpc: '2.0', id, error: { code: 1, message: fault.code, data: fault.params } })
  }
}

function exportedDisk(model: PoolModel, refOrUuid: string | null): ExportedDisk {
  const ref = refOrUuid === null ? undefined : model.store.resolve('VDI', refOrUuid)
  if (ref === undefined) throw handleInvalid('VDI', refOrUuid)
  const vdi = model.store.get('VDI', ref)
  const uuid = String(vdi.uuid)
  return { uuid, path: model.files.path(uuid), virtualSize: Number(vdi.virtual_size) }
}

function fail(deps: ServerDeps, res: ServerResponse, task: string | undefined, error: unknown): void {
  const fault = error instanceof XapiFault ? error : new XapiFault('VDI_IO_ERROR', [String(error)])
  if (task !== undefined) deps.tasks.fail(task, fault)
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain' })
    res.end(`${fault.code}(${fault.params.join(', ')})`)
  } else {
    res.destroy()
  }
}

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

async function handleExport(deps: ServerDeps, query: URLSearchParams, res: ServerResponse): Promise<void> {
  const task = deps.tasks.pending(query.get('task_id') ?? undefined)
  let body: Readable | undefined
  try {
    const fault = deps.faults.takeFailure('export_raw_vdi')
    if (fault !== undefined) throw fault
    const disk = exportedDisk(deps.model, query.get('vdi'))
    const format = query.get('format') ?? 'raw'
    if (format === 'vhd') {
      const baseRef = query.get('base')
      body = await exportVhd(disk, baseRef === null ? undefined : exportedDisk(deps.model, baseRef))
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
    } else if (format === 'raw') {
      body = createReadStream(disk.path)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': disk.virtualSize })
    } else {
      throw new XapiFault('FORMAT_NOT_SUPPORTED', [format])
    }
  } catch (error) {
    return fail(deps, res, task, error)
  }

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
      if (stall !== undefined) {
        await delay(stall)
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

async function handleImport(deps: ServerDeps, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
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
    const disk = exportedDisk(deps.model, query.get('vdi'))
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
      if (format === 'vhd') await importVhd(disk.path, disk.virtualSize, body)
      else await importRaw(disk.path, disk.virtualSize, body)
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

export function createXapiServer(deps: ServerDeps): Server {
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const route = url.pathname.replace(/\/+$/, '')
    const handle = async (): Promise<void> => {
      if (req.method === 'POST' && route === '/jsonrpc') return handleJsonRpc(deps, req, res)
      if (route === '/export_raw_vdi' || route === '/import_raw_vdi') {
        if (!deps.rpc.isValidSession(url.searchParams.get('session_id'))) {
          req.resume()
          res.writeHead(401)
          return void res.end()
        }
        const query = Object.fromEntries([...url.searchParams].filter(([key]) => key !== 'session_id'))
        res.once('finish', () =>
          deps.rpc.note({ method: route.slice(1), params: [query], ...(res.statusCode >= 400 && { error: `HTTP ${res.statusCode}` }) })
        )
        res.once('close', () => {
          if (!res.writableFinished) deps.rpc.note({ method: route.slice(1), params: [query], error: 'VDI_IO_ERROR' })
        })
        if (req.method === 'GET' && route === '/export_raw_vdi') return handleExport(deps, url.searchParams, res)
        if (req.method === 'PUT' && route === '/import_raw_vdi') return handleImport(deps, url.searchParams, req, res)
      }
      req.resume()
      res.writeHead(404)
      res.end()
    }
    handle().catch(error => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(error))
    })
  })
}
