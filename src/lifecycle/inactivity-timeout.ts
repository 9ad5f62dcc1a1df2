/**
 * A watchdog over a transfer: `expired` is called once no activity was seen for `ms`
 * milliseconds. Each `touch()` (bytes arrived) restarts the count; `stop()` disarms it.
 */
export interface InactivityWatchdog {
  touch(): void
  stop(): void
}

export function watchInactivity(ms: number, expired: () => void): InactivityWatchdog {
  let timer: NodeJS.Timeout | undefined = setTimeout(fire, ms)
  function fire(): void {
    timer = undefined
    expired()
  }
  return {
    touch() {
      if (timer !== undefined) timer.refresh()
    },
    stop() {
      clearTimeout(timer)
      timer = undefined
    },
  }
}
