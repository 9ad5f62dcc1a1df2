/**
 * xo-server's API errors (`xo-common/api-errors`): the same codes, messages and `data` shapes,
 * so a client sees exactly what xo-server 5.207 would send.
 */
export class XoApiError extends Error {
  readonly code: number
  readonly data: unknown

  constructor(code: number, message: string, data?: unknown) {
    super(message)
    this.name = 'XoApiError'
    this.code = code
    this.data = data
  }

  /** picked up by json-rpc-peer when it formats the error response */
  toJsonRpcError(): { code: number; message: string; data: unknown } {
    return { code: this.code, message: this.message, data: this.data }
  }
}

export const API_ERROR_CODES = {
  notImplemented: 0,
  noSuchObject: 1,
  unauthorized: 2,
  invalidCredentials: 3,
  forbiddenOperation: 5,
  invalidParameters: 10,
} as const

export function noSuchObject(id: string, type?: string): XoApiError {
  return new XoApiError(API_ERROR_CODES.noSuchObject, `no such ${type ?? 'object'} ${id}`, { id, type })
}

export function unauthorized(permission?: string | null, objectId?: string, objectType?: string): XoApiError {
  return new XoApiError(API_ERROR_CODES.unauthorized, 'not enough permissions', {
    permission,
    object: { id: objectId, type: objectType },
  })
}

export function invalidCredentials(): XoApiError {
  return new XoApiError(API_ERROR_CODES.invalidCredentials, 'invalid credentials')
}

export function forbiddenOperation(operation: string, reason: string): XoApiError {
  return new XoApiError(API_ERROR_CODES.forbiddenOperation, `forbidden operation: ${operation}`, { operation, reason })
}

/** `invalidParameters(errors)` or `invalidParameters(message, errors?)`, as in xo-common */
export function invalidParameters(messageOrErrors: string | readonly unknown[], errors?: readonly unknown[]): XoApiError {
  if (typeof messageOrErrors !== 'string') {
    return new XoApiError(API_ERROR_CODES.invalidParameters, 'invalid parameters', { errors: messageOrErrors })
  }
  return new XoApiError(API_ERROR_CODES.invalidParameters, messageOrErrors, { errors })
}

export function isApiError(error: unknown, code: number): error is XoApiError {
  return error instanceof XoApiError && error.code === code
}
