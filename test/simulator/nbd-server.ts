/**
 * The pool's NBD server, as XAPI's (xapi-nbd) behaves: fixed newstyle negotiation only; while a
 * network has the purpose `nbd`, every client must upgrade with `NBD_OPT_STARTTLS` first (any
 * other option answers `NBD_REP_ERR_TLS_REQD`); with only `insecure_nbd`, plain TCP; with neither,
 * connections are closed at once. The export name is the one `VDI.get_nbd_info` gives
 * (`/<VDI uuid>?session_id=<session>`): an unknown disk, a lost session or a disk whose data was
 * destroyed is refused (`NBD_REP_ERR_UNKNOWN` to `NBD_OPT_GO`, the connection closed after
 * `NBD_OPT_EXPORT_NAME`). The export is read-only: `NBD_CMD_READ` of any offset and length, replies
 * in the order of the requests; writes answer EPERM. Several connections at once, each holding
 * the disk plugged into the control domain while it is open.
 *
 * Faults (one-shot): a connection cut in the middle of a read reply, the next export name refused.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { TLSSocket } from 'node:tls'

import { FrameReader } from '../../src/nbd/frame-reader.js'
import {
  CMD_DISC,
  CMD_READ,
  EINVAL,
  EPERM,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  INFO_EXPORT,
  INIT_MAGIC,
  OPT_ABORT,
  OPT_EXPORT_NAME,
  OPT_GO,
  OPT_STARTTLS,
  OPTION_MAGIC,
  REP_ACK,
  REP_ERR_INVALID,
  REP_ERR_TLS_REQD,
  REP_ERR_UNKNOWN,
  REP_ERR_UNSUP,
  REP_INFO,
  REQUEST_MAGIC,
  REQUEST_SIZE,
  TRANSMISSION_HAS_FLAGS,
  TRANSMISSION_READ_ONLY,
  optionReplyFrame,
  simpleReplyFrame,
  CLIENT_FLAG_NO_ZEROES,
  CLIENT_FLAG_FIXED_NEWSTYLE,
} from '../../src/nbd/protocol.js'

/** what an accepted export name opens */
export interface NbdExportTarget {
  /** opens the disk's content for reading */
  readonly open: () => Promise<{ read(buffer: Buffer, offset: number, length: number, position: number): Promise<number>; close(): Promise<void> }>
  readonly size: number
  /** called when a connection opens the export; returns what to call when it closes */
  readonly attach: () => () => void
}

export type NbdMode = 'tls' | 'plain' | 'off'

export interface NbdServerDeps {
  /** the export an export name names, or why it is refused */
  resolve(name: string): NbdExportTarget | { readonly refused: string }
  /** what the pool's networks allow now */
  mode(): NbdMode
  /** the host's key and certificate (PEM), for TLS */
  credentials(): Promise<{ readonly key: string; readonly cert: string }>
}

/** one-shot faults of the NBD server */
export class NbdFaults {
  #cutAfter: number | undefined
  #cuts = 0
  #refuse: string | undefined

  /** the next `times` read replies are cut (their connection destroyed) after `bytes` bytes of data */
  cutReadAfter(bytes: number, times = 1): void {
    this.#cutAfter = bytes
    this.#cuts = times
  }

  /** the next export name is refused */
  refuseNextExport(reason = 'export refused by the server'): void {
    this.#refuse = reason
  }

  takeCut(): number | undefined {
    const value = this.#cutAfter
    if (--this.#cuts <= 0) this.#cutAfter = undefined
    return value
  }

  takeRefusal(): string | undefined {
    const value = this.#refuse
    this.#refuse = undefined
    return value
  }

  reset(): void {
    this.#cutAfter = undefined
    this.#cuts = 0
    this.#refuse = undefined
  }
}

class Refused extends Error {}

/** resolves once the socket can take more, or is gone */
function drained(socket: Socket): Promise<void> {
  return new Promise(resolve => {
    const done = (): void => {
      socket.off('drain', done).off('close', done)
      resolve()
    }
    socket.on('drain', done).on('close', done)
  })
}

export class NbdServer {
  readonly faults = new NbdFaults()
  readonly #deps: NbdServerDeps
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  /** connections that opened an export, ever: what a test checks parallelism with */
  opened = 0
  #port = 0

  constructor(deps: NbdServerDeps) {
    this.#deps = deps
    this.#server = createServer(socket => {
      this.#sockets.add(socket)
      socket.once('close', () => this.#sockets.delete(socket))
      socket.on('error', () => {})
      void this.#serve(socket).catch(() => socket.destroy())
    })
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      this.#server.listen(0, '127.0.0.1', () => resolve())
    })
    this.#port = (this.#server.address() as AddressInfo).port
    return this.#port
  }

  get port(): number {
    return this.#port
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise<void>(resolve => this.#server.close(() => resolve()))
  }

  async #serve(plain: Socket): Promise<void> {
    const mode = this.#deps.mode()
    if (mode === 'off') return void plain.destroy()
    let socket: Socket = plain
    let reader = new FrameReader(socket, 'NBD server')
    const hello = Buffer.alloc(18)
    INIT_MAGIC.copy(hello, 0)
    OPTION_MAGIC.copy(hello, 8)
    hello.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16)
    socket.write(hello)
    const clientFlags = (await reader.read(4)).readUInt32BE(0)
    if ((clientFlags & CLIENT_FLAG_FIXED_NEWSTYLE) === 0) return void socket.destroy()
    const noZeroes = (clientFlags & CLIENT_FLAG_NO_ZEROES) !== 0
    let secured = false

    for (;;) {
      const head = await reader.read(16)
      if (!head.subarray(0, 8).equals(OPTION_MAGIC)) return void socket.destroy()
      const option = head.readUInt32BE(8)
      const data = await reader.read(head.readUInt32BE(12))
      if (option === OPT_STARTTLS) {
        if (secured || mode !== 'tls') {
          socket.write(optionReplyFrame(option, REP_ERR_INVALID, Buffer.from(secured ? 'TLS already negotiated' : 'TLS not offered')))
          continue
        }
        const { key, cert } = await this.#deps.credentials()
        socket.write(optionReplyFrame(option, REP_ACK))
        const raw = reader.detach()
        const tls = new TLSSocket(raw, { isServer: true, key, cert })
        tls.on('error', () => tls.destroy())
        socket = tls
        this.#sockets.add(tls)
        reader = new FrameReader(tls, 'NBD server')
        secured = true
        continue
      }
      if (mode === 'tls' && !secured && option !== OPT_ABORT) {
        if (option === OPT_EXPORT_NAME) return void socket.destroy()
        socket.write(optionReplyFrame(option, REP_ERR_TLS_REQD, Buffer.from('TLS required: send NBD_OPT_STARTTLS first')))
        continue
      }
      if (option === OPT_ABORT) {
        socket.write(optionReplyFrame(option, REP_ACK))
        return void socket.end()
      }
      if (option === OPT_GO || option === OPT_EXPORT_NAME) {
        const name = option === OPT_GO ? data.subarray(4, 4 + data.readUInt32BE(0)).toString('utf8') : data.toString('utf8')
        const refusal = this.faults.takeRefusal()
        const target = refusal === undefined ? this.#deps.resolve(name) : { refused: refusal }
        if ('refused' in target) {
          if (option === OPT_EXPORT_NAME) return void socket.destroy()
          socket.write(optionReplyFrame(option, REP_ERR_UNKNOWN, Buffer.from(target.refused)))
          continue
        }
        const flags = TRANSMISSION_HAS_FLAGS | TRANSMISSION_READ_ONLY
        if (option === OPT_GO) {
          const info = Buffer.alloc(12)
          info.writeUInt16BE(INFO_EXPORT, 0)
          info.writeBigUInt64BE(BigInt(target.size), 2)
          info.writeUInt16BE(flags, 10)
          socket.write(optionReplyFrame(option, REP_INFO, info))
          socket.write(optionReplyFrame(option, REP_ACK))
        } else {
          const answer = Buffer.alloc(10 + (noZeroes ? 0 : 124))
          answer.writeBigUInt64BE(BigInt(target.size), 0)
          answer.writeUInt16BE(flags, 8)
          socket.write(answer)
        }
        return this.#transmit(socket, reader, target)
      }
      socket.write(optionReplyFrame(option, REP_ERR_UNSUP))
    }
  }

  async #transmit(socket: Socket, reader: FrameReader, target: NbdExportTarget): Promise<void> {
    this.opened++
    const release = target.attach()
    let file: Awaited<ReturnType<NbdExportTarget['open']>> | undefined
    try {
      file = await target.open()
      for (;;) {
        const request = await reader.read(REQUEST_SIZE)
        if (request.readUInt32BE(0) !== REQUEST_MAGIC) throw new Refused('bad request magic')
        const type = request.readUInt16BE(6)
        const handle = request.readBigUInt64BE(8)
        const offset = Number(request.readBigUInt64BE(16))
        const length = request.readUInt32BE(24)
        if (type === CMD_DISC) return void socket.end()
        if (type !== CMD_READ) {
          // a write carries its data: read it off before refusing
          if (type === 1) await reader.read(length)
          socket.write(simpleReplyFrame(type === 1 ? EPERM : EINVAL, handle))
          continue
        }
        if (length === 0 || offset + length > target.size) {
          socket.write(simpleReplyFrame(EINVAL, handle))
          continue
        }
        const data = Buffer.alloc(length)
        for (let done = 0; done < length; ) {
          const bytesRead = await file.read(data, done, length - done, offset + done)
          if (bytesRead === 0) break
          done += bytesRead
        }
        const cut = this.faults.takeCut()
        socket.write(simpleReplyFrame(0, handle))
        if (cut !== undefined && cut < length) {
          socket.write(data.subarray(0, cut))
          await new Promise(resolve => setImmediate(resolve))
          return void socket.destroy()
        }
        if (!socket.write(data)) await drained(socket)
      }
    } catch {
      socket.destroy()
    } finally {
      await file?.close()
      release()
    }
  }
}
