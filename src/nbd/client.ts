/**
 * One NBD connection to an export, as XAPI's NBD server (`VDI.get_nbd_info`) offers it:
 *
 * 1. fixed newstyle handshake (the server must offer `NBD_FLAG_FIXED_NEWSTYLE`);
 * 2. with a certificate (a network of purpose `nbd`), `NBD_OPT_STARTTLS` then a TLS handshake
 *    that trusts only that certificate, for the name `subject`: any other certificate fails the
 *    connection (`NBD_TLS_FAILED`); without one (purpose `insecure_nbd`), plain TCP;
 * 3. `NBD_OPT_GO` with the export name (`NBD_OPT_EXPORT_NAME` if the server does not know GO):
 *    a refused name is `NBD_EXPORT_REFUSED`;
 * 4. `NBD_CMD_READ` of any offset and length, several in flight, answered in any order;
 * 5. `NBD_CMD_DISC` to close.
 *
 * A connection that fails rejects every read in flight (`NBD_CONNECTION_LOST`); it is not
 * reopened here (see `NbdDisk`).
 */
import { X509Certificate } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, checkServerIdentity, type PeerCertificate, type TLSSocket } from 'node:tls'
import { NbdError } from './errors.js'
import { FrameReader } from './frame-reader.js'
import {
  CLIENT_FLAG_FIXED_NEWSTYLE,
  CLIENT_FLAG_NO_ZEROES,
  CMD_DISC,
  CMD_READ,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  INFO_EXPORT,
  INIT_MAGIC,
  OPT_EXPORT_NAME,
  OPT_GO,
  OPT_STARTTLS,
  OPTION_MAGIC,
  OPTION_REPLY_MAGIC,
  REP_ACK,
  REP_ERR_TLS_REQD,
  REP_ERR_UNSUP,
  REP_FLAG_ERROR,
  REP_INFO,
  SIMPLE_REPLY_MAGIC,
  SIMPLE_REPLY_SIZE,
  optionFrame,
  replyName,
  requestFrame,
} from './protocol.js'

/** one entry of `VDI.get_nbd_info` */
export interface NbdExportInfo {
  readonly address: string
  readonly port: number
  readonly exportname: string
  /** PEM of the server's certificate; empty for a plain (`insecure_nbd`) server */
  readonly cert?: string
  /** the name the certificate is issued to */
  readonly subject?: string
}

export interface NbdConnectOptions {
  /** a connection that gets no byte for this long while it waits for one fails (default 60 s) */
  readonly timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 60_000
/** the export's size and flags, then 124 zero bytes unless NO_ZEROES was agreed */
const EXPORT_NAME_REPLY = 10

interface PendingRead {
  readonly length: number
  readonly resolve: (data: Buffer) => void
  readonly reject: (error: Error) => void
}

function describeInfo(info: NbdExportInfo): string {
  return `NBD ${info.address}:${info.port}`
}

async function openSocket(info: NbdExportInfo, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: info.address, port: info.port })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new NbdError('NBD_TIMEOUT', `${describeInfo(info)}: no connection within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.once('connect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      socket.setNoDelay(true)
      resolve(socket)
    })
    const onError = (error: Error): void => {
      clearTimeout(timer)
      reject(new NbdError('NBD_CONNECTION_LOST', `${describeInfo(info)}: ${error.message}`, { cause: error }))
    }
    socket.once('error', onError)
  })
}

/** the TLS upgrade, trusting only the certificate XAPI announced, for its subject */
async function upgrade(socket: Socket, info: NbdExportInfo, timeoutMs: number): Promise<TLSSocket> {
  const expected = new X509Certificate(info.cert!)
  const subject = info.subject ?? ''
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      ca: info.cert,
      ...(subject === '' ? {} : { servername: subject }),
      checkServerIdentity: (_host: string, presented: PeerCertificate) => {
        if (!expected.raw.equals(presented.raw)) {
          return new Error('the server presented another certificate than the one XAPI announced for it')
        }
        return subject === '' ? undefined : checkServerIdentity(subject, presented)
      },
    })
    const timer = setTimeout(() => tls.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs)
    tls.once('secureConnect', () => {
      clearTimeout(timer)
      tls.off('error', onError)
      resolve(tls)
    })
    const onError = (error: Error): void => {
      clearTimeout(timer)
      tls.destroy()
      reject(new NbdError('NBD_TLS_FAILED', `${describeInfo(info)}: TLS with the NBD server failed: ${error.message}`, { cause: error }))
    }
    tls.once('error', onError)
  })
}

export class NbdConnection {
  readonly info: NbdExportInfo
  /** bytes of the export */
  readonly size: number
  readonly #socket: Socket
  readonly #reader: FrameReader
  readonly #pending = new Map<bigint, PendingRead>()
  readonly #promises = new Set<Promise<Buffer>>()
  #nextHandle = 1n
  #closing = false

  private constructor(info: NbdExportInfo, socket: Socket, reader: FrameReader, size: number, timeoutMs: number) {
    this.info = info
    this.#socket = socket
    this.#reader = reader
    this.size = size
    socket.setTimeout(timeoutMs, () => {
      if (this.#pending.size > 0) {
        this.#fail(new NbdError('NBD_TIMEOUT', `${describeInfo(info)}: no answer for ${timeoutMs} ms with ${this.#pending.size} read(s) in flight`))
      }
    })
    void this.#pump()
  }

  /** connects, negotiates and opens the export; the socket is destroyed on any failure */
  static async open(info: NbdExportInfo, options: NbdConnectOptions = {}): Promise<NbdConnection> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
    let socket: Socket = await openSocket(info, timeoutMs)
    let reader = new FrameReader(socket, describeInfo(info))
    const timer = setTimeout(() => reader.fail(new NbdError('NBD_TIMEOUT', `${describeInfo(info)}: negotiation took more than ${timeoutMs} ms`)), timeoutMs)
    try {
      const noZeroes = await greet(socket, reader, info)
      if (info.cert !== undefined && info.cert !== '') {
        await simpleOption(socket, reader, info, OPT_STARTTLS)
        socket = await upgrade(reader.detach(), info, timeoutMs)
        reader = new FrameReader(socket, describeInfo(info))
      }
      const size = await openExport(socket, reader, info, noZeroes)
      clearTimeout(timer)
      return new NbdConnection(info, socket, reader, size, timeoutMs)
    } catch (error) {
      clearTimeout(timer)
      socket.destroy()
      throw error
    }
  }

  /** whether reads can still be sent */
  get alive(): boolean {
    return !this.#closing && this.#reader.failure === undefined
  }

  get inFlight(): number {
    return this.#pending.size
  }

  /** the `length` bytes at `offset` of the export */
  read(offset: number, length: number): Promise<Buffer> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > this.size) {
      return Promise.reject(new RangeError(`NBD read of ${length} bytes at ${offset} is outside the export (${this.size} bytes)`))
    }
    if (!this.alive) {
      return Promise.reject(this.#reader.failure ?? new NbdError('NBD_CONNECTION_LOST', `${describeInfo(this.info)}: connection closed`))
    }
    const handle = this.#nextHandle++
    const promise = new Promise<Buffer>((resolve, reject) => {
      this.#pending.set(handle, { length, resolve, reject })
      this.#socket.write(requestFrame(CMD_READ, handle, BigInt(offset), length))
    })
    this.#promises.add(promise)
    const forget = (): void => void this.#promises.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  /** sends `NBD_CMD_DISC` once the reads in flight are answered, then closes */
  async close(): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    if (this.#reader.failure === undefined) {
      await Promise.allSettled(this.#promises)
      await new Promise<void>(resolve => this.#socket.end(requestFrame(CMD_DISC, this.#nextHandle++, 0n, 0), () => resolve()))
    }
    this.#socket.destroy()
  }

  /** ends the connection at once; reads in flight fail */
  destroy(): void {
    this.#closing = true
    this.#fail(new NbdError('NBD_CONNECTION_LOST', `${describeInfo(this.info)}: connection closed by the client`))
  }

  #fail(error: Error): void {
    this.#reader.fail(error)
    this.#socket.destroy()
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const header = await this.#reader.read(SIMPLE_REPLY_SIZE)
        if (header.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) {
          throw new NbdError('NBD_PROTOCOL', `${describeInfo(this.info)}: a reply with magic 0x${header.readUInt32BE(0).toString(16)} (structured replies were not negotiated)`)
        }
        const error = header.readUInt32BE(4)
        const handle = header.readBigUInt64BE(8)
        const read = this.#pending.get(handle)
        if (read === undefined) throw new NbdError('NBD_PROTOCOL', `${describeInfo(this.info)}: a reply to no request (handle ${handle})`)
        if (error !== 0) {
          this.#pending.delete(handle)
          read.reject(new NbdError('NBD_READ_FAILED', `${describeInfo(this.info)}: the server answered a read with error ${error}`))
          continue
        }
        const data = await this.#reader.read(read.length)
        this.#pending.delete(handle)
        read.resolve(data)
      }
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error))
      this.#reader.fail(failure)
      this.#socket.destroy()
      const reason = this.#reader.failure ?? failure
      for (const read of this.#pending.values()) read.reject(reason)
      this.#pending.clear()
    }
  }
}

/** reads the server's greeting and answers it; whether both sides dropped the 124 zero bytes */
async function greet(socket: Socket, reader: FrameReader, info: NbdExportInfo): Promise<boolean> {
  const hello = await reader.read(18)
  if (!hello.subarray(0, 8).equals(INIT_MAGIC) || !hello.subarray(8, 16).equals(OPTION_MAGIC)) {
    throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: not a newstyle NBD server`)
  }
  const flags = hello.readUInt16BE(16)
  if ((flags & FLAG_FIXED_NEWSTYLE) === 0) throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: the server does not offer fixed newstyle negotiation`)
  const noZeroes = (flags & FLAG_NO_ZEROES) !== 0
  const clientFlags = Buffer.alloc(4)
  clientFlags.writeUInt32BE(CLIENT_FLAG_FIXED_NEWSTYLE | (noZeroes ? CLIENT_FLAG_NO_ZEROES : 0))
  socket.write(clientFlags)
  return noZeroes
}

interface OptionReply {
  readonly type: number
  readonly data: Buffer
}

async function readOptionReply(reader: FrameReader, info: NbdExportInfo, option: number): Promise<OptionReply> {
  const head = await reader.read(20)
  if (head.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: bad option reply magic`)
  if (head.readUInt32BE(8) !== option) throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: a reply to option ${head.readUInt32BE(8)}, not ${option}`)
  const type = head.readUInt32BE(12)
  const data = await reader.read(head.readUInt32BE(16))
  return { type, data }
}

function isError(type: number): boolean {
  return (type & REP_FLAG_ERROR) !== 0
}

/** an option answered by one ACK */
async function simpleOption(socket: Socket, reader: FrameReader, info: NbdExportInfo, option: number): Promise<void> {
  socket.write(optionFrame(option))
  const reply = await readOptionReply(reader, info, option)
  if (reply.type !== REP_ACK) {
    const text = reply.data.toString('utf8')
    const code = option === OPT_STARTTLS ? 'NBD_TLS_FAILED' : 'NBD_PROTOCOL'
    throw new NbdError(code, `${describeInfo(info)}: option ${option} answered ${replyName(reply.type)}${text === '' ? '' : `: ${text}`}`)
  }
}

/** `NBD_OPT_GO` (or `NBD_OPT_EXPORT_NAME` for a server without it); the export's size */
async function openExport(socket: Socket, reader: FrameReader, info: NbdExportInfo, noZeroes: boolean): Promise<number> {
  const name = Buffer.from(info.exportname, 'utf8')
  const data = Buffer.alloc(4 + name.length + 2)
  data.writeUInt32BE(name.length, 0)
  name.copy(data, 4)
  data.writeUInt16BE(0, 4 + name.length)
  socket.write(optionFrame(OPT_GO, data))
  let size: number | undefined
  for (;;) {
    const reply = await readOptionReply(reader, info, OPT_GO)
    if (reply.type === REP_INFO) {
      if (reply.data.length >= 12 && reply.data.readUInt16BE(0) === INFO_EXPORT) size = Number(reply.data.readBigUInt64BE(2))
      continue
    }
    if (reply.type === REP_ACK) {
      if (size === undefined) throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: NBD_OPT_GO ended without the export's size`)
      return size
    }
    if (reply.type === REP_ERR_UNSUP >>> 0) return exportNameOption(socket, reader, info, noZeroes)
    const text = reply.data.toString('utf8')
    if (reply.type === REP_ERR_TLS_REQD >>> 0) throw new NbdError('NBD_TLS_FAILED', `${describeInfo(info)}: the server requires TLS and XAPI gave no certificate`)
    if (isError(reply.type)) {
      throw new NbdError('NBD_EXPORT_REFUSED', `${describeInfo(info)}: export "${info.exportname}" refused (${replyName(reply.type)}${text === '' ? '' : `: ${text}`})`)
    }
    throw new NbdError('NBD_PROTOCOL', `${describeInfo(info)}: NBD_OPT_GO answered ${replyName(reply.type)}`)
  }
}

async function exportNameOption(socket: Socket, reader: FrameReader, info: NbdExportInfo, noZeroes: boolean): Promise<number> {
  socket.write(optionFrame(OPT_EXPORT_NAME, Buffer.from(info.exportname, 'utf8')))
  let answer: Buffer
  try {
    answer = await reader.read(EXPORT_NAME_REPLY + (noZeroes ? 0 : 124))
  } catch (error) {
    // the only way a server refuses NBD_OPT_EXPORT_NAME is to close the connection
    throw new NbdError('NBD_EXPORT_REFUSED', `${describeInfo(info)}: export "${info.exportname}" refused (the server closed the connection)`, { cause: error })
  }
  return Number(answer.readBigUInt64BE(0))
}
