/**
 * Housekeeping a VM's run starts and need not wait for: destroying the previous reference
 * snapshot, which a pool refuses with VDI_IN_USE for a few seconds after the export that read it
 * (XAPI facts: "VDI.destroy right after an export"). The VM's run goes on (its retention, the
 * job's next VM) while the pool releases the disk; the job waits for every VM's housekeeping
 * before it ends, and what it reports lands in the job's log and in that VM's result.
 */
import type { RunReporter } from './job.js'

/** where late housekeeping reports: the job's log, the VM named in each line */
export interface HousekeepingLog {
  info(message: string, data?: Record<string, unknown>): void
  warning(message: string, data?: Record<string, unknown>): void
}

export class Housekeeping {
  readonly #pending: Promise<void>[] = []
  readonly #log: HousekeepingLog
  /** the warnings of the work done so far, for the VM's result */
  readonly warnings: string[] = []

  /** `reporter`: the job's; `vmLabel` prefixes each line (the VM's own task has ended by then) */
  constructor(reporter: RunReporter, vmLabel: string) {
    this.#log = {
      info: (message, data) => reporter.info(`${vmLabel}: ${message}`, data),
      warning: (message, data) => {
        this.warnings.push(message)
        reporter.warning(`${vmLabel}: ${message}`, data)
      },
    }
  }

  /** runs `work` from now on; a failure of it is a warning, never the run's failure */
  start(work: (log: HousekeepingLog) => Promise<void>): void {
    this.#pending.push(
      work(this.#log).catch((error: unknown) => this.#log.warning(`housekeeping failed, the next run will do it: ${error instanceof Error ? error.message : String(error)}`)),
    )
  }

  /** resolves once all the work started has ended */
  async settled(): Promise<void> {
    await Promise.all(this.#pending)
  }
}
