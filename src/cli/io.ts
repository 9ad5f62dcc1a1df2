/** What a CLI command writes to and reads from, so that commands run the same in tests. */
import type { Terminal } from './progress.js'
import type { SecretMasker } from './secrets.js'

export interface CliIo {
  readonly stdout: Terminal
  readonly stderr: Terminal
  readonly env: Readonly<Record<string, string | undefined>>
  readonly masker: SecretMasker
  /** aborted on Ctrl-C */
  readonly signal: AbortSignal
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`
}

export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${io.masker.mask(JSON.stringify(value, null, 2))}\n`)
}

export function printLine(io: CliIo, line = ''): void {
  io.stdout.write(`${io.masker.mask(line)}\n`)
}
