/**
 * A disk read over several NBD connections at once. Each read goes to the open connection with
 * the fewest reads in flight. A connection that fails (cut, timed out, a read answered with an
 * error) is replaced by a new one — to the next address XAPI gave, if it gave several — and each
 * of its reads is sent again on another connection, at most `retries` times per read; past that
 * the read fails with the last error. A refused export name or a failed TLS check is never retried.
 */
import { NbdConnection, type NbdConnectOptions, type NbdExportInfo } from './client.js'
import { isRetriedNbdError, NbdError } from './errors.js'

export interface NbdDiskOptions extends NbdConnectOptions {
  /** connections opened (default 1) */
  readonly connections?: number
  /** times one read is sent again after a failure (default 3) */
  readonly retries?: number
  /** told of each retry */
  readonly onRetry?: (event: { offset: number; length: number; attempt: number; error: Error }) => void
}

export class NbdDisk {
  readonly size: number
  readonly #infos: readonly NbdExportInfo[]
  readonly #options: NbdDiskOptions
  readonly #retries: number
  #connections: NbdConnection[]
  #nextInfo: number
  /** replacements being opened */
  readonly #opening = new Set<Promise<void>>()
  #closed = false

  private constructor(infos: readonly NbdExportInfo[], connections: NbdConnection[], options: NbdDiskOptions) {
    this.#infos = infos
    this.#options = options
    this.#retries = options.retries ?? 3
    this.#connections = connections
    this.#nextInfo = connections.length
    this.size = connections[0]!.size
  }

  /** opens `connections` connections, spread over the addresses XAPI gave */
  static async open(infos: readonly NbdExportInfo[], options: NbdDiskOptions = {}): Promise<NbdDisk> {
    if (infos.length === 0) throw new NbdError('NBD_CONNECTION_LOST', 'XAPI gave no NBD address for this disk')
    const count = Math.max(1, Math.floor(options.connections ?? 1))
    const opened = await Promise.allSettled(Array.from({ length: count }, (_, i) => NbdConnection.open(infos[i % infos.length]!, options)))
    const connections = opened.flatMap(result => (result.status === 'fulfilled' ? [result.value] : []))
    const failed = opened.find(result => result.status === 'rejected')
    if (failed !== undefined) {
      await Promise.allSettled(connections.map(connection => connection.close()))
      throw failed.reason
    }
    const sizes = new Set(connections.map(connection => connection.size))
    if (sizes.size !== 1) {
      await Promise.allSettled(connections.map(connection => connection.close()))
      throw new NbdError('NBD_PROTOCOL', `the NBD connections of one disk report different sizes: ${[...sizes].join(', ')}`)
    }
    return new NbdDisk(infos, connections, options)
  }

  get connections(): number {
    return this.#connections.length
  }

  /** the `length` bytes at `offset` */
  async read(offset: number, length: number): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw new NbdError('NBD_CONNECTION_LOST', 'the NBD disk was closed')
      const connection = await this.#pick()
      try {
        return await connection.read(offset, length)
      } catch (error) {
        if (!isRetriedNbdError(error) || attempt >= this.#retries) throw error
        this.#options.onRetry?.({ offset, length, attempt: attempt + 1, error: error as Error })
        // a read the server refused leaves its connection working: only a lost one is replaced
        if ((error as NbdError).code !== 'NBD_READ_FAILED') this.#replace(connection)
      }
    }
  }

  /** resolves once the replacements of failed connections are open (or failed to open) */
  async replaced(): Promise<void> {
    await Promise.allSettled([...this.#opening])
  }

  async close(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#opening])
    await Promise.allSettled(this.#connections.map(connection => connection.close()))
  }

  /** the live connection with the fewest reads in flight; waits for a replacement if none is live */
  async #pick(): Promise<NbdConnection> {
    for (;;) {
      let best: NbdConnection | undefined
      for (const connection of this.#connections) {
        if (connection.alive && (best === undefined || connection.inFlight < best.inFlight)) best = connection
      }
      if (best !== undefined) return best
      for (const connection of [...this.#connections]) this.#replace(connection)
      if (this.#opening.size === 0) this.#spawn()
      // closed meanwhile: nothing is opened any more, nothing would wake this read
      if (this.#closed || this.#opening.size === 0) throw new NbdError('NBD_CONNECTION_LOST', 'the NBD disk was closed')
      // a replacement that fails to open fails the read
      await Promise.race(this.#opening)
    }
  }

  /** a failed connection is dropped and a new one opened in its place (once) */
  #replace(connection: NbdConnection): void {
    if (!this.#connections.includes(connection)) return
    if (connection.alive) connection.destroy()
    this.#connections = this.#connections.filter(candidate => candidate !== connection)
    this.#spawn()
  }

  /** opens one more connection, to the next address */
  #spawn(): void {
    if (this.#closed) return
    const info = this.#infos[this.#nextInfo++ % this.#infos.length]!
    const opening: Promise<void> = NbdConnection.open(info, this.#options).then(
      fresh => {
        this.#opening.delete(opening)
        if (this.#closed) void fresh.close()
        else this.#connections.push(fresh)
      },
      error => {
        this.#opening.delete(opening)
        throw error
      },
    )
    opening.catch(() => {})
    this.#opening.add(opening)
  }
}
