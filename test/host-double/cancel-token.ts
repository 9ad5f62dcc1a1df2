/**
 * The cancel token handed to job executors. xo-server passes a `promise-toolbox` CancelToken;
 * this one offers the members executors use (`requested`, `reason`, `promise`,
 * `throwIfRequested()`) plus a standard `signal`.
 */
export interface CancelToken {
  readonly requested: boolean
  readonly reason: Error | undefined
  /** resolves with the reason when cancellation is requested */
  readonly promise: Promise<Error>
  readonly signal: AbortSignal
  throwIfRequested(): void
}

export function createCancelSource(): { token: CancelToken; cancel(message?: string): void } {
  const controller = new AbortController()
  let resolve!: (reason: Error) => void
  const promise = new Promise<Error>(r => (resolve = r))
  const token: CancelToken = {
    get requested() {
      return controller.signal.aborted
    },
    get reason() {
      return controller.signal.aborted ? (controller.signal.reason as Error) : undefined
    },
    promise,
    signal: controller.signal,
    throwIfRequested() {
      if (controller.signal.aborted) throw controller.signal.reason
    },
  }
  return {
    token,
    cancel(message = 'operation has been cancelled') {
      if (controller.signal.aborted) return
      const reason = Object.assign(new Error(message), { name: 'Cancel' })
      controller.abort(reason)
      resolve(reason)
    },
  }
}
