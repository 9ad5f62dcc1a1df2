/**
 * node build/bench/markdown-table.js [bench/results.json]
 *
 * Prints the figures of a results file as a Markdown table (date, machine, load, every target
 * with its value and PASS / MISS), for the README files.
 */
import { readFile } from 'node:fs/promises'

interface Measured {
  readonly median_ms?: number
  readonly min_ms?: number
  readonly max_ms?: number
  readonly peak_rss_mib?: number | null
  readonly bytes?: number
}
interface Target {
  readonly name: string
  readonly target: string
  readonly value: number | null
  readonly pass: boolean | null
  readonly verdict?: string
}
interface Results {
  readonly date: string
  readonly load_at_start: readonly number[]
  readonly load_at_end: readonly number[]
  readonly duration_s: number
  readonly machine: { readonly cpu_model: string; readonly cores: number; readonly memory_gib: number; readonly filesystem: string; readonly node: string }
  readonly config: { readonly rounds: number; readonly hugeRounds: number }
  readonly targets: readonly Target[]
  readonly [section: string]: unknown
}

const path = process.argv[2] ?? 'bench/results.json'
const results = JSON.parse(await readFile(path, 'utf8')) as Results

function section(name: string): Record<string, Measured | number | undefined> {
  return (results[name] ?? {}) as Record<string, Measured | number | undefined>
}

function ms(m: Measured | number | undefined): string {
  if (m === undefined || typeof m === 'number' || m.median_ms === undefined) return '–'
  const f = (v: number | undefined): string => (v === undefined ? '?' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)
  return `${f(m.median_ms)} (${f(m.min_ms)}–${f(m.max_ms)})`
}

function rss(m: Measured | number | undefined): string {
  return m === undefined || typeof m === 'number' || m.peak_rss_mib === undefined || m.peak_rss_mib === null ? '–' : m.peak_rss_mib.toFixed(0)
}

const rows: string[][] = []
const add = (label: string, m: Measured | number | undefined): void => void rows.push([label, ms(m), rss(m)])
const file = section('merge_vhd_file')
add('merge, VHD files: ours', file['ours'])
add('merge, VHD files: vhd-lib `mergeVhdChain`', file['vhd_lib'])
add('merge, VHD files: I/O floor', file['floor'])
const dir = section('merge_vhd_directory')
add('merge, VHD directories: ours', dir['ours'])
add('merge, VHD directories: vhd-lib', dir['vhd_lib'])
const transfer = section('delta_transfer')
add('delta transfer: ours (`runJob`)', transfer['ours'])
add('delta transfer: raw stream', transfer['raw'])
add('delta transfer: ours, from its start to its snapshot taken (part of ours)', transfer['ours_snapshot'])
add("delta transfer: the pool's `VM.snapshot` before the raw stream (not timed in it)", transfer['raw_snapshot'])
const nbd = section('nbd_transfer')
add('delta over NBD (CBT): HTTP export, `runJob`', nbd['export'])
add('delta over NBD (CBT): 1 connection, `runJob`', nbd['nbd_1'])
add('delta over NBD (CBT): 2 connections, `runJob`', nbd['nbd_2'])
add('delta over NBD (CBT): 4 connections, `runJob`', nbd['nbd_4'])
const restore = section('restore_read')
add('restore read: ours, 11 files', restore['ours'])
add('restore read: one file', restore['single_file'])
add('restore read: one file, each 2 MiB block hashed as read', restore['single_file_checked'])
const huge = section('huge_2040g')
add('2,040 GiB: merge, ours', huge['merge_ours'])
add('2,040 GiB: transfer, ours', huge['transfer_ours'])
const vsXo = section('merge_vs_xo')
add("merge, VHD files: XO's `MergeRemoteDisk`", vsXo['file_local_xo'])
add("merge, VHD directories: XO's `MergeRemoteDisk`", vsXo['directory_local_xo'])
const listing = section('listing')
add('listing: `listRestorePoints`', listing['list_restore_points'])
add('listing: DR CLI `list` (a process)', listing['cli_list'])
add('listing: retention pass, every VM', listing['retention_pass'])
add('listing: plain readdir + readFile + JSON.parse', listing['plain'])
add('listing: the same, in a fresh process', listing['plain_process'])
const job = section('job_50_vms')
add('50 VMs × 2 disks, small change: one at a time', job['at_1'])
add('50 VMs × 2 disks, small change: 2 at once', job['at_2'])
add('50 VMs × 2 disks, small change: 4 at once', job['at_4'])
add('50 VMs × 2 disks, no change: one at a time', job['no_change_at_1'])
const s3 = section('s3')
add('S3: delta transfer, ours (`runJob`, VHD directories)', s3['transfer_ours'])
add('S3: raw delta stream as one multipart upload', s3['transfer_raw_multipart'])
add('S3: ours, from its start to its snapshot taken (part of ours)', s3['transfer_ours_snapshot'])
add('S3: merge, ours', s3['merge_ours'])
add('S3: merge, vhd-lib', s3['merge_vhd_lib'])
add("S3: merge, XO's `MergeRemoteDisk`", s3['merge_xo'])

const { machine } = results
const lines = [
  `${results.date.slice(0, 16).replace('T', ' ')} UTC; ${machine.cpu_model}, ${machine.cores} cores, ${machine.memory_gib} GiB, ` +
    `${machine.filesystem}, Node ${machine.node}; ${results.config.rounds} rounds (${results.config.hugeRounds} at 2,040 GiB); ` +
    `load average ${results.load_at_start[0]} at start, ${results.load_at_end[0]} at the end; ${results.duration_s} s.`,
  '',
  '| run | median (min–max) | peak RSS MiB |',
  '|---|---|---|',
  ...rows.map(row => `| ${row.join(' | ')} |`),
  '',
  '| target | value | required | |',
  '|---|---|---|---|',
  ...results.targets.map(t => `| ${t.name} | ${t.value === null ? '–' : String(Math.round(t.value * 1000) / 1000)} | ${t.target} | ${t.verdict ?? (t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'MISS')} |`),
  '',
]
process.stdout.write(lines.join('\n'))
