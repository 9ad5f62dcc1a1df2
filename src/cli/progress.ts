/**
 * A `RunReporter` for the CLI's stderr. On a terminal: one progress bar per step (each disk of a
 * restore, the restore points of a verify), redrawn in place, and the warnings. Otherwise (a pipe,
 * a log file): plain lines, one each time a step passes a tenth (`disk "system": 40%`), and the
 * warnings. With `--json`: nothing but errors.
 */
import type { RunReporter } from '../lifecycle/job.js'

export interface Terminal {
  readonly isTTY?: boolean
  readonly columns?: number
  write(text: string): boolean
}

const noop = (): void => {}

export const silentReporter: RunReporter = {
  info: noop,
  warning: noop,
  child: () => silentReporter,
  progress: noop,
  end: noop,
}

export function renderBar(label: string, percent: number, width: number): string {
  const clamped = Math.max(0, Math.min(100, percent))
  const text = ` ${clamped.toFixed(0).padStart(3)}%`
  const room = Math.max(10, width - label.length - text.length - 4)
  const filled = Math.round((room * clamped) / 100)
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(room - filled)}]${text}`
}

class BarReporter implements RunReporter {
  readonly #terminal: Terminal
  readonly #label: string
  #lastDrawn = -1

  constructor(terminal: Terminal, label: string) {
    this.#terminal = terminal
    this.#label = label
  }

  info(): void {}

  warning(message: string): void {
    this.#terminal.write(`\nwarning: ${message}\n`)
  }

  child(name: string): RunReporter {
    return new BarReporter(this.#terminal, name)
  }

  progress(percent: number): void {
    const whole = Math.floor(percent)
    if (whole === this.#lastDrawn) return
    this.#lastDrawn = whole
    this.#terminal.write(`\r${renderBar(this.#label, whole, Math.min(this.#terminal.columns ?? 80, 100))}`)
  }

  end(result?: { status: 'success' | 'failure' | 'skipped' }): void {
    if (this.#lastDrawn >= 0) {
      if (result?.status !== 'failure') this.progress(100)
      this.#terminal.write('\n')
    }
  }
}

/** plain lines: a step's progress at each tenth it passes, then its end */
class LineReporter implements RunReporter {
  readonly #terminal: Terminal
  readonly #label: string
  #lastTenth = -1
  #ended = false

  constructor(terminal: Terminal, label: string) {
    this.#terminal = terminal
    this.#label = label
  }

  info(): void {}

  warning(message: string): void {
    this.#terminal.write(`warning: ${message}\n`)
  }

  child(name: string): RunReporter {
    return new LineReporter(this.#terminal, name)
  }

  progress(percent: number): void {
    const tenth = Math.floor(Math.max(0, Math.min(100, percent)) / 10)
    if (tenth <= this.#lastTenth) return
    this.#lastTenth = tenth
    this.#terminal.write(`${this.#label}: ${tenth * 10}%\n`)
  }

  end(result?: { status: 'success' | 'failure' | 'skipped' }): void {
    if (this.#ended || this.#lastTenth < 0) return
    this.#ended = true
    if (result?.status === 'failure') this.#terminal.write(`${this.#label}: failed\n`)
    else this.progress(100)
  }
}

export function progressReporter(terminal: Terminal, enabled: boolean, label = 'restore'): RunReporter {
  if (!enabled) return silentReporter
  return terminal.isTTY === true ? new BarReporter(terminal, label) : new LineReporter(terminal, label)
}
