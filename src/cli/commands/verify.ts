/** `verify`: checks the backups on a remote; exit code 1 when an error-level problem is found. */
import { randomInt } from 'node:crypto'
import { verifyRemote } from '../../repository/verify.js'
import { openRemote } from '../connect.js'
import { printJson, printLine } from '../io.js'
import { progressReporter } from '../progress.js'
import type { CliIo } from '../io.js'
import { EXIT_FAILURE, EXIT_OK } from '../usage.js'

export interface VerifyOptions {
  readonly remote: string
  readonly vm?: string
  readonly json: boolean
  /** check a random share of the blocks; without a seed, one is drawn and printed */
  readonly sample?: { readonly percent: number; readonly seed?: number }
}

function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`
}

export async function verifyCommand(options: VerifyOptions, io: CliIo): Promise<number> {
  const remote = await openRemote(options.remote)
  try {
    const sample = options.sample === undefined ? undefined : { percent: options.sample.percent, seed: options.sample.seed ?? randomInt(2 ** 31 - 1) }
    // a bar on a terminal, plain lines otherwise: the share of the restore points checked
    const progress = progressReporter(io.stderr, !options.json, 'verify')
    let report
    try {
      report = await verifyRemote(remote.handler, {
        ...(options.vm === undefined ? {} : { vm: options.vm }),
        ...(sample === undefined ? {} : { sample }),
        onProgress: percent => progress.progress(percent),
      })
    } catch (error) {
      progress.end({ status: 'failure' })
      throw error
    }
    progress.end({ status: 'success' })
    if (options.json) {
      printJson(io, report)
      return report.ok ? EXIT_OK : EXIT_FAILURE
    }
    for (const point of report.restorePoints) {
      printLine(io, `${point.ok ? 'ok  ' : 'FAIL'}  ${point.id}`)
      for (const problem of point.problems) printLine(io, `      ${problem.severity} ${problem.code}: ${problem.message} (${problem.path})`)
    }
    for (const problem of report.problems) printLine(io, `${problem.severity === 'error' ? 'FAIL' : 'hint'}  ${problem.code}: ${problem.message} (${problem.path})`)
    const share = sample === undefined ? 'every block' : `a random ${sample.percent} % of the blocks (seed ${sample.seed}; --seed ${sample.seed} repeats this draw)`
    printLine(io, `checked ${share}: ${report.read.blocks} block${report.read.blocks === 1 ? '' : 's'} read, ${formatBytes(report.read.bytes)}`)
    const failed = report.restorePoints.filter(point => !point.ok).length
    const total = report.restorePoints.length
    printLine(
      io,
      `\n${total} restore point${total === 1 ? '' : 's'} checked: ${report.ok ? 'no problems found' : `${failed} with problems, ${report.problems.length} other problem${report.problems.length === 1 ? '' : 's'}`}`
    )
    return report.ok ? EXIT_OK : EXIT_FAILURE
  } finally {
    await remote.close()
  }
}
