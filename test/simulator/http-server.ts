/**
 * The pool's HTTP face: JSON-RPC at `/jsonrpc`, disk export at `GET /export_raw_vdi/` and disk
 * import at `PUT /import_raw_vdi/`; the disk handlers are authenticated by `session_id` and logged.
 */
import { createServer, type Server } from 'node:http'

import type { ServerDeps } from './http-deps.js'
import { handleExport } from './http-export.js'
import { handleImport } from './http-import.js'
import { handleJsonRpc } from './http-jsonrpc.js'

export type { ServerDeps } from './http-deps.js'

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
