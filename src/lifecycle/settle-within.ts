/**
 * Waits for a promise for at most `ms` milliseconds: resolves to `{ settled: false }` when it
 * takes longer (the promise is left running), rethrows its rejection, and rejects with
 * `CANCELLED` as soon as `signal` is aborted.
 */
import { BackupError } from '../errors.js'

export type Settlement<T> = { readonly settled: true; readonly value: T } | { readonly settled: false }

export async function settleWithin<T>(promise: Promise<T>, ms: number, signal?: AbortSignal): Promise<Settlement<T>> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await Promise.race([
      promise.then(value => ({ settled: true as const, value })),
      new Promise<Settlement<T>>(resolve => {
        timer = setTimeout(() => resolve({ settled: false }), ms)
      }),
      new Promise<never>((_, reject) => {
        onAbort = () => reject(new BackupError('CANCELLED', 'the run was cancelled'))
        if (signal?.aborted === true) onAbort()
        else signal?.addEventListener('abort', onAbort, { once: true })
      }),
    ])
  } finally {
    clearTimeout(timer)
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  }
}
