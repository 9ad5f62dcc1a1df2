/**
 * Schedules (`xo-mixins/scheduling.mjs`): `{ id, cron, enabled, jobId, name, timezone, userId }`
 * stored in `<datadir>/schedules.json`; each enabled schedule runs
 * `runJobSequence([jobId], schedule)` on its cron through `@xen-orchestra/cron`
 * (minute granularity). `close()` stops every timer.
 */
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { noSuchObject } from './api-errors.js'
import { JsonFile } from './json-file.js'
import type { Schedule } from './jobs.js'
import { loadCron } from './vendor.js'

type OptionalKey = 'name' | 'timezone' | 'userId'
export type SchedulePatch = { readonly [key in keyof Schedule]?: key extends OptionalKey ? Schedule[key] | null : Schedule[key] }

// the patched value of an optional property: `null` removes it, `undefined` keeps the current one
function optional<K extends OptionalKey>(key: K, patch: SchedulePatch, current: Schedule): Partial<Pick<Schedule, K>> {
  const value = patch[key] === undefined ? current[key] : patch[key]
  return value === null || value === undefined ? {} : ({ [key]: value } as Partial<Pick<Schedule, K>>)
}

export type ScheduleProps = Omit<Schedule, 'id' | 'enabled'> & { readonly enabled?: boolean }

export class Schedules {
  readonly #file: JsonFile<Schedule[]>
  #schedules: Map<string, Schedule> | undefined
  readonly #stops = new Map<string, () => void>()
  readonly #run: (schedule: Schedule) => Promise<void>
  #closed = false

  /** `run` is called on each tick of an enabled schedule; its failure is ignored */
  constructor(dataDir: string, run: (schedule: Schedule) => Promise<void>) {
    this.#file = new JsonFile(join(dataDir, 'schedules.json'))
    this.#run = run
  }

  /** starts the enabled schedules found in the data dir */
  async start(): Promise<void> {
    for (const schedule of (await this.#all()).values()) if (schedule.enabled) await this.#start(schedule)
  }

  async createSchedule({ enabled = true, ...props }: ScheduleProps): Promise<Schedule> {
    const { createSchedule } = await loadCron()
    createSchedule(props.cron, props.timezone ?? 'utc') // rejects an invalid pattern or timezone
    const schedule: Schedule = { ...props, enabled, id: randomUUID() }
    ;(await this.#all()).set(schedule.id, schedule)
    await this.#save()
    if (enabled) await this.#start(schedule)
    return { ...schedule }
  }

  async updateSchedule({ id, ...props }: SchedulePatch & { id: string }): Promise<void> {
    const schedules = await this.#all()
    const existing = schedules.get(id)
    if (existing === undefined) throw noSuchObject(id, 'schedule')
    const schedule: Schedule = {
      id,
      cron: props.cron ?? existing.cron,
      enabled: props.enabled ?? existing.enabled,
      jobId: props.jobId ?? existing.jobId,
      ...optional('name', props, existing),
      ...optional('timezone', props, existing),
      ...optional('userId', props, existing),
    }
    schedules.set(id, schedule)
    await this.#save()
    this.#stop(id)
    if (schedule.enabled) await this.#start(schedule)
  }

  async deleteSchedule(id: string): Promise<void> {
    const schedules = await this.#all()
    if (!schedules.has(id)) throw noSuchObject(id, 'schedule')
    this.#stop(id)
    schedules.delete(id)
    await this.#save()
  }

  async getSchedule(id: string): Promise<Schedule> {
    const schedule = (await this.#all()).get(id)
    if (schedule === undefined) throw noSuchObject(id, 'schedule')
    return { ...schedule }
  }

  async getAllSchedules(): Promise<Schedule[]> {
    return [...(await this.#all()).values()].map(schedule => ({ ...schedule }))
  }

  /** the number of schedules whose timer is running */
  get activeCount(): number {
    return this.#stops.size
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const id of [...this.#stops.keys()]) this.#stop(id)
    await this.#file.flush()
  }

  async #start(schedule: Schedule): Promise<void> {
    const { createSchedule } = await loadCron()
    // closed meanwhile: no timer may outlive close()
    if (this.#closed) return
    this.#stop(schedule.id)
    const stop = createSchedule(schedule.cron, schedule.timezone ?? 'utc').startJob(() => this.#run(schedule).catch(() => {}))
    this.#stops.set(schedule.id, stop)
  }

  #stop(id: string): void {
    const stop = this.#stops.get(id)
    if (stop === undefined) return
    this.#stops.delete(id)
    stop()
  }

  async #all(): Promise<Map<string, Schedule>> {
    if (this.#schedules === undefined) {
      const list = await this.#file.read([])
      this.#schedules ??= new Map(list.map(schedule => [schedule.id, schedule]))
    }
    return this.#schedules
  }

  async #save(): Promise<void> {
    await this.#file.write([...(await this.#all()).values()])
  }
}
