/**
 * Every error this product raises for a user carries a stable `code` and the context it is
 * known in. Codes are listed here and nowhere else.
 */
export const ERROR_CODES = [
  'POOL_TOO_OLD',
  'VM_NOT_FOUND',
  'REMOTE_NOT_FOUND',
  'REMOTE_DISABLED',
  'JOB_NOT_FOUND',
  'JOB_RUNNING',
  'INVALID_PARAMETER',
  'CHAIN_LOCKED',
  'CHAIN_BROKEN',
  'DATA_DAMAGED',
  'MERGE_PENDING',
  'TRANSFER_FAILED',
  'SNAPSHOT_FAILED',
  'BACKUP_FAILED',
  'HEALTH_CHECK_FAILED',
  'HEALTH_CHECK_TIMEOUT',
  'RESTORE_POINT_NOT_FOUND',
  'SR_NOT_FOUND',
  'UNSAFE_PATH',
  'METADATA_INVALID',
  'CANCELLED',
  'STEP_FAILED',
  'UNKNOWN_STEP',
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

export interface ErrorContext {
  readonly step?: string
  readonly hook?: string
  readonly vm?: string
  readonly vdi?: string
  readonly [key: string]: unknown
}

export class BackupError extends Error {
  readonly code: ErrorCode
  readonly context: ErrorContext

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BackupError'
    this.code = code
    this.context = context
  }
}
