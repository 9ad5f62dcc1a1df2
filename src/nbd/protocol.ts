/**
 * The parts of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md) this product speaks: the
 * fixed newstyle handshake, `NBD_OPT_STARTTLS`, `NBD_OPT_GO` (with `NBD_OPT_EXPORT_NAME` for a
 * server that lacks it), simple replies to `NBD_CMD_READ`, and `NBD_CMD_DISC`. Structured replies
 * are never negotiated, so the server only sends simple ones. Every number is big-endian.
 */

/** the server's greeting: "NBDMAGIC" then "IHAVEOPT" (newstyle) */
export const INIT_MAGIC = Buffer.from('NBDMAGIC', 'latin1')
export const OPTION_MAGIC = Buffer.from('IHAVEOPT', 'latin1')
/** what starts each option reply */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n

/** handshake flags (server) */
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1
/** client flags */
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0
export const CLIENT_FLAG_NO_ZEROES = 1 << 1

export const OPT_EXPORT_NAME = 1
export const OPT_ABORT = 2
export const OPT_STARTTLS = 5
export const OPT_GO = 7

export const REP_ACK = 1
export const REP_INFO = 3
/** error replies have bit 31 set */
export const REP_FLAG_ERROR = 0x80000000
export const REP_ERR_UNSUP = REP_FLAG_ERROR | 1
export const REP_ERR_POLICY = REP_FLAG_ERROR | 2
export const REP_ERR_INVALID = REP_FLAG_ERROR | 3
export const REP_ERR_TLS_REQD = REP_FLAG_ERROR | 5
export const REP_ERR_UNKNOWN = REP_FLAG_ERROR | 6

export const INFO_EXPORT = 0

/** transmission flags */
export const TRANSMISSION_HAS_FLAGS = 1 << 0
export const TRANSMISSION_READ_ONLY = 1 << 1

export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698
export const CMD_READ = 0
export const CMD_DISC = 2

/** bytes of a request and of a simple reply's header */
export const REQUEST_SIZE = 28
export const SIMPLE_REPLY_SIZE = 16

/** errno values a server answers a command with */
export const EPERM = 1
export const EIO = 5
export const EINVAL = 22

/** the name of an option reply type, for error messages */
export function replyName(type: number): string {
  switch (type >>> 0) {
    case REP_ACK:
      return 'NBD_REP_ACK'
    case REP_INFO:
      return 'NBD_REP_INFO'
    case REP_ERR_UNSUP >>> 0:
      return 'NBD_REP_ERR_UNSUP'
    case REP_ERR_POLICY >>> 0:
      return 'NBD_REP_ERR_POLICY'
    case REP_ERR_INVALID >>> 0:
      return 'NBD_REP_ERR_INVALID'
    case REP_ERR_TLS_REQD >>> 0:
      return 'NBD_REP_ERR_TLS_REQD'
    case REP_ERR_UNKNOWN >>> 0:
      return 'NBD_REP_ERR_UNKNOWN'
    default:
      return `reply type 0x${(type >>> 0).toString(16)}`
  }
}

/** an option as the client sends it: magic, option, length, data */
export function optionFrame(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(16)
  OPTION_MAGIC.copy(head, 0)
  head.writeUInt32BE(option, 8)
  head.writeUInt32BE(data.length, 12)
  return Buffer.concat([head, data])
}

/** an option reply as the server sends it */
export function optionReplyFrame(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20)
  head.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0)
  head.writeUInt32BE(option, 8)
  head.writeUInt32BE(type >>> 0, 12)
  head.writeUInt32BE(data.length, 16)
  return Buffer.concat([head, data])
}

export function requestFrame(type: number, handle: bigint, offset: bigint, length: number): Buffer {
  const frame = Buffer.alloc(REQUEST_SIZE)
  frame.writeUInt32BE(REQUEST_MAGIC, 0)
  frame.writeUInt16BE(0, 4)
  frame.writeUInt16BE(type, 6)
  frame.writeBigUInt64BE(handle, 8)
  frame.writeBigUInt64BE(offset, 16)
  frame.writeUInt32BE(length, 24)
  return frame
}

export function simpleReplyFrame(error: number, handle: bigint): Buffer {
  const frame = Buffer.alloc(SIMPLE_REPLY_SIZE)
  frame.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0)
  frame.writeUInt32BE(error, 4)
  frame.writeBigUInt64BE(handle, 8)
  return frame
}
