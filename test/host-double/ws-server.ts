/**
 * The JSON-RPC 2.0 over WebSocket endpoint (`ws://127.0.0.1:PORT/api/`), one json-rpc-peer per
 * connection, as xo-server serves it to xo-web, xo-cli and xo-lib.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'
import type { XoApp } from './app.js'
import { loadJsonRpcPeer } from './vendor.js'

export interface ApiServer {
  readonly port: number
  /** ws://127.0.0.1:PORT/api/ */
  readonly url: string
  close(): Promise<void>
}

// xo-lib appends `/api/` to the URL it is given: accept the path with or without a repetition
const isApiPath = (path: string): boolean => /\/api\/?$/.test(path.split('?')[0]!)

export async function serveApi(app: XoApp, { port = 0, host = '127.0.0.1' }: { port?: number; host?: string } = {}): Promise<ApiServer> {
  const { Peer } = await loadJsonRpcPeer()
  const http = createServer((_req, res) => {
    res.statusCode = 404
    res.end('xo-server host double: the API is served over WebSocket at /api/\n')
  })
  const wss = new WebSocketServer({ noServer: true })
  const sockets = new Set<WebSocket>()

  http.on('upgrade', (req, socket, head) => {
    if (!isApiPath(req.url ?? '')) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, ws => {
      sockets.add(ws)
      const connection = app.createApiConnection(req.socket.remoteAddress)
      const peer = new Peer(message => {
        if (message.type === 'request') return app.callApiMethod(connection, message.method, message.params)
        return undefined
      })
      peer.on('data', (data: string) => {
        if (ws.readyState === ws.OPEN) ws.send(data)
      })
      ws.on('message', data => peer.write(data.toString()))
      ws.on('error', () => ws.terminate())
      ws.on('close', () => {
        sockets.delete(ws)
        connection.close()
        peer.failPendingRequests(new Error('connection closed'))
      })
    })
  })

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => {
      http.off('error', reject)
      resolve()
    })
  })
  const actualPort = (http.address() as AddressInfo).port
  return {
    port: actualPort,
    url: `ws://${host}:${actualPort}/api/`,
    async close() {
      for (const ws of sockets) ws.terminate()
      await new Promise<void>(resolve => wss.close(() => resolve()))
      http.closeAllConnections()
      await new Promise<void>((resolve, reject) => http.close(error => (error ? reject(error) : resolve())))
    },
  }
}
