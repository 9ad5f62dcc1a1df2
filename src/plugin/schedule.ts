/**
 * Checks a job's schedule the way XO's scheduler will read it (`@xen-orchestra/cron`, five
 * fields, months 0-11) so that a bad pattern or an unknown timezone is refused when the job is
 * saved, not silently never fired.
 */
import { createRequire } from 'node:module'

import { BackupError } from '../errors.js'

interface CronSchedule {
  next(count: number): Date[]
}
interface CronModule {
  createSchedule(pattern: string, zone?: string): CronSchedule
}

const cron: CronModule = createRequire(import.meta.url)('@xen-orchestra/cron')

export const DEFAULT_TIMEZONE = 'UTC'

function isKnownTimezone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/** the next `count` dates the schedule fires at; throws `INVALID_PARAMETER` naming the fault */
export function nextRuns(
  schedule: { readonly cron: string; readonly timezone?: string },
  count = 1,
  label: string | { readonly cron: string; readonly timezone: string } = 'schedule'
): Date[] {
  const names = typeof label === 'string' ? { cron: `${label}.cron`, timezone: `${label}.timezone` } : label
  const zone = schedule.timezone ?? DEFAULT_TIMEZONE
  if (!isKnownTimezone(zone)) {
    throw new BackupError('INVALID_PARAMETER', `${names.timezone}: unknown timezone "${zone}"`)
  }
  try {
    return cron.createSchedule(schedule.cron, zone).next(count)
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new BackupError(
      'INVALID_PARAMETER',
      `${names.cron}: "${schedule.cron}" is not a valid cron pattern (five fields: minute hour day-of-month month(0-11) day-of-week): ${reason}`
    )
  }
}

export function assertValidSchedule(
  schedule: { readonly cron: string; readonly timezone?: string },
  label?: string | { readonly cron: string; readonly timezone: string }
): void {
  nextRuns(schedule, 1, label)
}
