/** xen-api rejects with errors carrying XAPI's error code and parameters */
export function xapiErrorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string') {
    return error.code
  }
  return undefined
}
