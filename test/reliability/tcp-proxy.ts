/**
 * A TCP relay on 127.0.0.1 in front of a server, to make that server unreachable on demand:
 * `cut()` drops every open connection and refuses new ones until `restore()`.
 */
import { createConnection, createServer, type Socket } from 'node:net'

export interface TcpProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string
  cut(): void
  restore(): void
  close(): Promise<void>
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const { hostname, port } = new URL(target)
  const sockets = new Set<Socket>()
  let down = false
  const server = createServer(client => {
    if (down) {
      client.destroy()
      return
    }
    const upstream = createConnection({ host: hostname, port: Number(port) })
    sockets.add(client).add(upstream)
    const drop = (): void => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    cut() {
      down = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    restore() {
      down = false
    },
    async close() {
      down = true
      for (const socket of sockets) socket.destroy()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
}
