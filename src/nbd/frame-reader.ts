/**
 * Exact-length reads from a socket: `read(n)` resolves with the next `n` bytes. The first end or
 * error of the socket rejects the pending read and every later one with `NBD_CONNECTION_LOST`.
 * `detach` hands the socket over (to a TLS upgrade) with nothing left unread.
 */
import type { Socket } from 'node:net'
import { NbdError } from './errors.js'

export class FrameReader {
  #socket: Socket | undefined
  #chunks: Buffer[] = []
  #available = 0
  #waiter: { n: number; resolve: (buffer: Buffer) => void; reject: (error: Error) => void } | undefined
  #failure: Error | undefined
  readonly #describe: string

  constructor(socket: Socket, describe: string) {
    this.#describe = describe
    this.attach(socket)
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#chunks.push(chunk)
    this.#available += chunk.length
    this.#serve()
  }

  readonly #onEnd = (): void => this.fail(new NbdError('NBD_CONNECTION_LOST', `${this.#describe}: the server closed the connection`))

  readonly #onError = (error: Error): void =>
    this.fail(error instanceof NbdError ? error : new NbdError('NBD_CONNECTION_LOST', `${this.#describe}: ${error.message}`, { cause: error }))

  attach(socket: Socket): void {
    this.#socket = socket
    socket.on('data', this.#onData).on('end', this.#onEnd).on('close', this.#onEnd).on('error', this.#onError)
  }

  /** stops reading `socket`; throws if bytes were received that nobody read */
  detach(): Socket {
    const socket = this.#socket
    if (socket === undefined) throw new Error('no socket attached')
    socket.off('data', this.#onData).off('end', this.#onEnd).off('close', this.#onEnd).off('error', this.#onError)
    socket.pause()
    this.#socket = undefined
    if (this.#available > 0) throw new NbdError('NBD_PROTOCOL', `${this.#describe}: the server sent ${this.#available} unexpected bytes`)
    return socket
  }

  /** the reason reads fail, once they do */
  get failure(): Error | undefined {
    return this.#failure
  }

  fail(error: Error): void {
    if (this.#failure !== undefined) return
    this.#failure = error
    const waiter = this.#waiter
    this.#waiter = undefined
    waiter?.reject(error)
  }

  read(n: number): Promise<Buffer> {
    if (this.#waiter !== undefined) return Promise.reject(new Error('FrameReader: one read at a time'))
    if (n === 0) return Promise.resolve(Buffer.alloc(0))
    if (this.#available >= n) return Promise.resolve(this.#take(n))
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    return new Promise((resolve, reject) => {
      this.#waiter = { n, resolve, reject }
    })
  }

  #serve(): void {
    const waiter = this.#waiter
    if (waiter === undefined || this.#available < waiter.n) return
    this.#waiter = undefined
    waiter.resolve(this.#take(waiter.n))
  }

  #take(n: number): Buffer {
    const first = this.#chunks[0]!
    if (first.length >= n) {
      const out = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
      this.#available -= n
      return out
    }
    const out = Buffer.allocUnsafe(n)
    let done = 0
    while (done < n) {
      const chunk = this.#chunks[0]!
      const part = Math.min(chunk.length, n - done)
      chunk.copy(out, done, 0, part)
      done += part
      if (part === chunk.length) this.#chunks.shift()
      else this.#chunks[0] = chunk.subarray(part)
    }
    this.#available -= n
    return out
  }
}
