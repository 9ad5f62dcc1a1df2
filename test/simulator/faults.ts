/** Faults a test arms on demand; each fires once (except a lost session, which is immediate). */
import { XapiFault } from './xapi-fault.js'

export interface Faults {
  /**
   * The next disk export is cut (connection destroyed, task failed with VDI_IO_ERROR) after
   * `bytes` bytes of body; an export shorter than that completes.
   */
  cutExportAfter(bytes: number): void
  /**
   * The next disk export pauses `ms` milliseconds after its first bytes (the VHD footer, or the
   * first chunk of raw data), or until its client leaves.
   */
  stallExport(ms: number): void
  /**
   * The next call of `method` fails with `code` and `params`. For `Async.<method>` the call returns
   * a task which fails. `export_raw_vdi` and `import_raw_vdi` name the HTTP handlers.
   */
  failNextCall(method: string, code: string, params?: string[]): void
  /** Every open session is forgotten: the next call answers SESSION_INVALID. */
  loseSession(): void
  /** The VDI (and its VBDs) vanish as if another client had destroyed them. */
  destroyVdiBehindClient(uuid: string): void
  /** Disarms every pending fault. */
  reset(): void
}

/** The armed one-shot faults, consumed by the RPC and HTTP layers. */
export class ArmedFaults {
  #cutAfter: number | undefined
  #stallMs: number | undefined
  readonly #failures = new Map<string, XapiFault>()

  armCut(bytes: number): void {
    this.#cutAfter = bytes
  }

  armStall(ms: number): void {
    this.#stallMs = ms
  }

  armFailure(method: string, code: string, params: readonly string[] = []): void {
    this.#failures.set(method.replace(/^Async\./, ''), new XapiFault(code, params))
  }

  takeCut(): number | undefined {
    const value = this.#cutAfter
    this.#cutAfter = undefined
    return value
  }

  takeStall(): number | undefined {
    const value = this.#stallMs
    this.#stallMs = undefined
    return value
  }

  /** The armed failure for `method` (with or without `Async.`), disarmed by this call. */
  takeFailure(method: string): XapiFault | undefined {
    const key = method.replace(/^Async\./, '')
    const fault = this.#failures.get(key)
    this.#failures.delete(key)
    return fault
  }

  reset(): void {
    this.#cutAfter = undefined
    this.#stallMs = undefined
    this.#failures.clear()
  }
}
