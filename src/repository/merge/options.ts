import { BackupError } from '../../errors.js'

/** What every merge runner accepts: cancellation and block progress. */
export interface MergeRunOptions {
  readonly signal?: AbortSignal | undefined
  onProgress?(done: number, total: number): void
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new BackupError('CANCELLED', 'the merge was cancelled; it resumes from its state file', {}, { cause: signal.reason })
  }
}

/** Whether an error from a remote handler means "no such file" (ENOENT, or an object store's 404). */
export function isMissing(error: unknown): boolean {
  const e = error as { code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: unknown } } | undefined
  return e?.code === 'ENOENT' || e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404
}
