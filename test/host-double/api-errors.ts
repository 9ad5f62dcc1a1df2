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

type IdOf = (ref: string) => string
type XapiErrorMapper = (params: readonly string[], idOf: IdOf) => XoApiError

// the XAPI errors xo-server answers with an XO error of its own (`XAPI_ERROR_TO_XO_ERROR`)
const XAPI_TO_XO: Readonly<Record<string, XapiErrorMapper>> = {
  EHOSTUNREACH: () => new XoApiError(9, 'server unreachable', { objectId: undefined }),
  HOST_OFFLINE: ([host = ''], idOf) => new XoApiError(18, 'host offline', { objectId: idOf(host) }),
  NO_HOSTS_AVAILABLE: () => new XoApiError(7, 'no hosts available'),
  NOT_SUPPORTED_DURING_UPGRADE: () => new XoApiError(15, 'not supported during upgrade'),
  OPERATION_BLOCKED: ([ref = '', code], idOf) => new XoApiError(19, 'operation blocked', { objectId: idOf(ref), code }),
  SESSION_AUTHENTICATION_FAILED: () => new XoApiError(8, 'authentication failed'),
  VDI_IN_USE: ([vdi = '', operation], idOf) => new XoApiError(17, 'VDI in use', { objectId: idOf(vdi), operation }),
  VM_BAD_POWER_STATE: ([vm = '', expected, actual], idOf) =>
    new XoApiError(13, `VM state is ${actual} but should be ${expected}`, { objectId: idOf(vm), expected, actual }),
  VM_IS_TEMPLATE: ([vm = ''], idOf) => new XoApiError(12, 'VM is a template', { objectId: idOf(vm) }),
  VM_LACKS_FEATURE: ([vm = ''], idOf) => new XoApiError(14, 'VM lacks feature ', { objectId: idOf(vm), feature: undefined }),
  VM_LACKS_FEATURE_SHUTDOWN: ([vm = ''], idOf) => new XoApiError(14, 'VM lacks feature shutdown', { objectId: idOf(vm), feature: 'shutdown' }),
  VM_MISSING_PV_DRIVERS: ([vm = ''], idOf) => new XoApiError(11, 'missing PV drivers', { objectId: idOf(vm) }),
}

/** the XO error xo-server sends for this XAPI error, if it translates it */
export function fromXapiError(error: unknown, idOf: IdOf): XoApiError | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const { code, params } = error as { code?: unknown; params?: unknown }
  const mapper = typeof code === 'string' ? XAPI_TO_XO[code] : undefined
  if (mapper === undefined) return undefined
  return mapper(Array.isArray(params) ? params.map(String) : [], idOf)
}
