/** `POST /jsonrpc`: one JSON-RPC 2.0 call per request, answered in XAPI's format. */
import type { IncomingMessage, ServerResponse } from 'node:http'

import type { ServerDeps } from './http-deps.js'
import { XapiFault } from './xapi-fault.js'

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

export async function handleJsonRpc(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
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

