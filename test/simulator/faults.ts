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
  /**
   * The next disk export answers HTTP 200 whose body is a whole HTTP 500 answer with an HTML
   * page (XAPI's bug, xen-api issue 4603: e.g. SR_BACKEND_FAILURE_46 "VDI not detached cleanly").
   */
  answerExportWithHtmlError(detail?: string): void
  /** Every open session is forgotten: the next call answers SESSION_INVALID. */
  loseSession(): void
  /** The VDI (and its VBDs) vanish as if another client had destroyed them. */
  destroyVdiBehindClient(uuid: string): void
  /** The next `times` (1) NBD read replies are cut (their connection destroyed) after `bytes` bytes of data. */
  cutNbdReadAfter(bytes: number, times?: number): void
  /** The NBD server refuses the next export name it is asked for. */
  refuseNextNbdExport(reason?: string): void
  /** Disarms every pending fault. */
  reset(): void
}

/** The armed one-shot faults, consumed by the RPC and HTTP layers. */
export class ArmedFaults {
  #cutAfter: number | undefined
  #stallMs: number | undefined
  #html: string | undefined
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

  armHtml(detail = 'SR_BACKEND_FAILURE_46: [ ; The VDI is not available [opterr=VDI not detached cleanly];  ]'): void {
    const page = `<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a while and try again. If the problem persists, please contact your support representative.<h1> Additional information </h1>${detail}</body></html>`
    this.#html = `HTTP/1.1 500 Internal Error\r\ncontent-length: ${Buffer.byteLength(page)}\r\ncontent-type:text/html\r\nconnection:close\r\ncache-control:no-cache, no-store\r\n\r\n${page}`
  }

  takeHtmlAnswer(): string | undefined {
    const value = this.#html
    this.#html = undefined
    return value
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
    this.#html = undefined
    this.#failures.clear()
  }
}
