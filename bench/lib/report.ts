/** The table for people. */
import type { BenchResults } from '../run.js'
import type { ImplResult } from './series.js'
import { verdictOf } from './targets.js'

const pad = (text: string, width: number): string => (text.length >= width ? text : text + ' '.repeat(width - text.length))
const padLeft = (text: string, width: number): string => (text.length >= width ? text : ' '.repeat(width - text.length) + text)

function row(caseName: string, impl: string, result: ImplResult | undefined): string {
  if (result === undefined) return ''
  const head = `${pad(caseName, 22)} ${pad(impl, 14)}`
  if (result.status !== 'measured') return `${head} ${result.reason.split('\n')[0]!.slice(0, 160)}\n`
  const ms = (v: number): string => padLeft(v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`, 9)
  const verified = result.verified === null ? '-' : result.verified ? 'yes' : 'NO'
  const rate = result.bytes !== undefined ? `${padLeft(((result.bytes / 2 ** 20) / (result.median_ms / 1000)).toFixed(0), 6)} MiB/s` : ''
  return `${head} ${ms(result.median_ms)} ${ms(result.min_ms)} ${ms(result.max_ms)} ${padLeft(result.peak_rss_mib === null ? '-' : result.peak_rss_mib.toFixed(0), 7)} ${pad(verified, 8)} ${rate}\n`
}

function isImpl(value: unknown): value is ImplResult {
  return typeof value === 'object' && value !== null && 'status' in value
}

export function formatTable(results: BenchResults): string {
  let text = `${pad('case', 22)} ${pad('run', 14)} ${padLeft('median', 9)} ${padLeft('min', 9)} ${padLeft('max', 9)} ${padLeft('RSS MiB', 7)} ${pad('verified', 8)} rate\n`
  text += `${'-'.repeat(100)}\n`
  const sections: [string, Record<string, unknown> | undefined][] = [
    ['merge_vhd_file', results.merge_vhd_file],
    ['merge_vhd_directory', results.merge_vhd_directory],
    ['delta_transfer', results.delta_transfer],
    ['nbd_transfer', results.nbd_transfer],
    ['first_delta', results.first_delta],
    ['restore_read', results.restore_read],
    ['huge_2040g', results.huge_2040g],
    ['s3', results.s3],
    ['merge_vs_xo', results.merge_vs_xo],
    ['listing', results.listing],
    ['job_50_vms', results.job_50_vms],
  ]
  for (const [name, section] of sections) {
    if (section === undefined) continue
    for (const [key, value] of Object.entries(section)) if (isImpl(value)) text += row(name, key, value)
  }
  text += '\nratios\n'
  for (const [name, section] of sections) {
    if (section === undefined) continue
    for (const [key, value] of Object.entries(section)) {
      if (typeof value === 'number' || (value === null && /_over_|bytes/.test(key))) text += `  ${name}.${key} = ${value ?? 'n/a'}\n`
      else if (typeof value === 'object' && value !== null && !isImpl(value) && /_ms$|_bytes$/.test(key)) {
        text += `  ${name}.${key} = ${Object.entries(value).map(([k, v]) => `${k} ${String(v ?? 'n/a')}`).join(', ')}\n`
      }
    }
  }
  text += '\ntargets\n'
  for (const target of results.targets) {
    text += `  ${pad(verdictOf(target), 11)} ${pad(target.name, 70)} ${pad(String(target.value ?? '-'), 10)} (target ${target.target})\n`
  }
  const m = results.machine
  text += `\n${results.date}  ${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, ${m.filesystem}; load at start ${results.load_at_start.join(' ')}, at end ${results.load_at_end.join(' ')}; ${results.duration_s} s\n`
  return text
}
