import { BackupError } from '../errors.js'

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
