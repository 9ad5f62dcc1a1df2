/**
 * A guest booting. `VM.start` makes the VM Running at once (XAPI reports the domain as soon as it
 * is created); its guest tools report later: after `toolsDelayMs`, a `VM_guest_metrics` record
 * with `PV_drivers_version` appears and the VM's `guest_metrics` points at it, as when the guest
 * agent first writes into xenstore. A shutdown removes them (XAPI's power-state reset destroys a
 * halted VM's guest metrics).
 *
 * A guest that never boots (a broken boot disk, no tools): `neverReport(vm)` for a known VM, or
 * `neverReportNextStart()` for the next VM started (a restored VM, whose uuid a test cannot know
 * beforehand). Its VM is Running and its `guest_metrics` stays `OpaqueRef:NULL`.
 */
import type { ObjectStore } from './object-store.js'
import { xapiDate } from './xapi-date.js'
import { NULL_REF } from './xapi-types.js'

/** the version the simulated guest agent reports */
export const GUEST_TOOLS_VERSION = { major: '7', minor: '30', micro: '0', build: '1' } as const

export class GuestBoot {
  /** how long after `VM.start` the guest tools report (default 20 ms) */
  toolsDelayMs = 20

  readonly #store: ObjectStore
  readonly #never = new Set<string>()
  #neverNext = 0
  readonly #timers = new Map<string, NodeJS.Timeout>()
  /** the VMs started, in order, with the network interfaces they had at their start */
  readonly started: { readonly uuid: string; readonly name: string; readonly vifs: readonly string[] }[] = []

  constructor(store: ObjectStore) {
    this.#store = store
  }

  /** the guest of this VM (ref or uuid) never reports its tools */
  neverReport(vm: string): void {
    this.#never.add(this.#store.resolve('VM', vm) ?? vm)
  }

  /** the guest of the next VM started never reports its tools */
  neverReportNextStart(): void {
    this.#neverNext++
  }

  /** `VM.start` made the VM Running */
  onStart(vm: string): void {
    const record = this.#store.get('VM', vm)
    this.started.push({ uuid: String(record.uuid), name: String(record.name_label), vifs: [...(record.VIFs as string[])] })
    if (this.#neverNext > 0) {
      this.#neverNext--
      this.#never.add(vm)
    }
    if (this.#never.has(vm)) return
    const timer = setTimeout(() => {
      this.#timers.delete(vm)
      if (!this.#store.has(vm) || this.#store.get('VM', vm).power_state !== 'Running') return
      const metrics = this.#store.create('VM_guest_metrics', {
        os_version: { name: 'Simulated Linux', distro: 'sim', major: '1' },
        PV_drivers_version: { ...GUEST_TOOLS_VERSION },
        PV_drivers_up_to_date: true,
        PV_drivers_detected: true,
        live: true,
        last_updated: xapiDate(),
      })
      this.#store.update('VM', vm, { guest_metrics: metrics })
    }, this.toolsDelayMs)
    timer.unref()
    this.#timers.set(vm, timer)
  }

  /** the VM was shut down: its guest metrics go */
  onHalt(vm: string): void {
    clearTimeout(this.#timers.get(vm))
    this.#timers.delete(vm)
    const metrics = String(this.#store.get('VM', vm).guest_metrics)
    if (metrics === NULL_REF) return
    this.#store.update('VM', vm, { guest_metrics: NULL_REF })
    if (this.#store.has(metrics)) this.#store.destroy('VM_guest_metrics', metrics)
  }

  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer)
    this.#timers.clear()
  }
}
