/** What an NBD exchange can fail with, each named so that a log line says which. */
export type NbdErrorCode =
  /** the server refused the export name (unknown disk, expired session, a disk with no data) */
  | 'NBD_EXPORT_REFUSED'
  /** the TLS upgrade failed: refused, or the server's certificate is not the one XAPI announced */
  | 'NBD_TLS_FAILED'
  /** the connection closed or failed (before or during a read) */
  | 'NBD_CONNECTION_LOST'
  /** nothing came from the server for too long */
  | 'NBD_TIMEOUT'
  /** the server answered something the protocol does not allow */
  | 'NBD_PROTOCOL'
  /** the server answered a read with an error */
  | 'NBD_READ_FAILED'

export class NbdError extends Error {
  readonly code: NbdErrorCode

  constructor(code: NbdErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'NbdError'
    this.code = code
  }
}

/** errors a read is retried on, on another connection */
export function isRetriedNbdError(error: unknown): boolean {
  return error instanceof NbdError && (error.code === 'NBD_CONNECTION_LOST' || error.code === 'NBD_TIMEOUT' || error.code === 'NBD_READ_FAILED')
}
