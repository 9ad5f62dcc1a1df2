/**
 * The benchmark: every case in one run, on data generated here from a seed, in a temporary folder
 * removed at the end. Returns the results object written to bench/results.json.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { type FirstDeltaShape, runFirstDeltaCase } from './cases/first-delta.js'
import { type JobManyVmsShape, runJobManyVmsCase } from './cases/job-many-vms.js'
import { type ListingShape, runListingCase } from './cases/listing.js'
import { type S3Shape, runS3Case } from './cases/s3.js'
import { type MergeCaseRun, type MergeShape, runMergeCase } from './cases/merge.js'
import { NBD_IMPLS, runNbdTransferCase } from './cases/nbd-transfer.js'
import { type RestoreShape, runRestoreCase } from './cases/restore.js'
import { type TransferShape, runTransferCase } from './cases/transfer.js'
import { loadAverages, machineInfo, type MachineInfo } from './lib/machine.js'
import { type CaseContext, type ImplResult, medianOf, rssOf } from './lib/series.js'
import { ratio } from './lib/stats.js'
import { check, checkOverFloor, type TargetCheck } from './lib/targets.js'

const GiB = 2 ** 30

export const CASE_NAMES = ['merge_vhd_file', 'merge_vhd_directory', 'delta_transfer', 'nbd_transfer', 'first_delta', 'restore_read', 'huge_2040g', 'listing', 'job_50_vms', 's3'] as const
export type CaseName = (typeof CASE_NAMES)[number]

export interface BenchConfig {
  readonly quick: boolean
  readonly rounds: number
  /** rounds of the 2,040 GiB case (it repeats the merge and the transfer at a larger virtual size) */
  readonly hugeRounds: number
  readonly seed: number
  readonly cases: readonly CaseName[]
  readonly merge: MergeShape
  readonly hugeVirtualSize: number
  readonly transfer: TransferShape
  /** the delta read over NBD (1, 2, 4 connections) and with the HTTP export */
  readonly nbdTransfer: TransferShape
  readonly firstDelta: FirstDeltaShape
  readonly restore: RestoreShape
  readonly listing: ListingShape
  readonly jobManyVms: JobManyVmsShape
  readonly s3: S3Shape
}

export const FULL_CONFIG: BenchConfig = {
  quick: false,
  rounds: 5,
  hugeRounds: 2,
  seed: 20261126,
  cases: CASE_NAMES,
  merge: { virtualSize: 20 * GiB, parentBlocks: 1024, childBlocks: 128, overlapping: 32 },
  hugeVirtualSize: 2040 * GiB,
  transfer: { diskSize: 20 * GiB, initialBlocks: 128, changedBlocks: 128, overlapping: 32 },
  nbdTransfer: { diskSize: 20 * GiB, initialBlocks: 128, changedBlocks: 128, overlapping: 32 },
  // a full holding 4 GiB, a 2 MiB change, as measured in issue 10 (finding 9)
  firstDelta: { diskSize: 8 * GiB, fullBlocks: 2048, changedBlocks: 1 },
  restore: { virtualSize: 20 * GiB, fullBlocks: 512, deltas: 10, deltaBlocks: 32, deltaOverlapping: 16 },
  listing: { vms: 50, pointsPerVm: 30, disksPerVm: 2 },
  jobManyVms: { vms: 50, disksPerVm: 2, diskSize: 1 * GiB, initialBlocks: 4, changedBlocks: 1, withTwoAtOnce: true },
  s3: {
    transfer: { diskSize: 20 * GiB, initialBlocks: 64, changedBlocks: 64, overlapping: 16 },
    merge: { virtualSize: 20 * GiB, parentBlocks: 64, childBlocks: 32, overlapping: 8 },
  },
}

export const QUICK_CONFIG: BenchConfig = {
  ...FULL_CONFIG,
  quick: true,
  rounds: 1,
  hugeRounds: 1,
  merge: { virtualSize: 1 * GiB, parentBlocks: 32, childBlocks: 8, overlapping: 4 },
  transfer: { diskSize: 1 * GiB, initialBlocks: 8, changedBlocks: 8, overlapping: 4 },
  nbdTransfer: { diskSize: 1 * GiB, initialBlocks: 8, changedBlocks: 8, overlapping: 4 },
  firstDelta: { diskSize: 1 * GiB, fullBlocks: 128, changedBlocks: 1 },
  restore: { virtualSize: 1 * GiB, fullBlocks: 16, deltas: 10, deltaBlocks: 4, deltaOverlapping: 2 },
  listing: { vms: 5, pointsPerVm: 6, disksPerVm: 2 },
  jobManyVms: { vms: 6, disksPerVm: 2, diskSize: 1 * GiB, initialBlocks: 2, changedBlocks: 1, withTwoAtOnce: true },
  s3: {
    transfer: { diskSize: 1 * GiB, initialBlocks: 4, changedBlocks: 4, overlapping: 2 },
    merge: { virtualSize: 1 * GiB, parentBlocks: 8, childBlocks: 4, overlapping: 2 },
  },
}

export interface RunOptions {
  /** the temporary folder is created in there (same file system as the remote under test) */
  readonly workRoot: string
  readonly cpuProfileDir?: string
  log(message: string): void
}

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json | undefined }

export interface BenchResults {
  readonly date: string
  readonly load_at_start: readonly [number, number, number]
  readonly load_at_end: readonly [number, number, number]
  readonly duration_s: number
  readonly machine: MachineInfo
  readonly config: BenchConfig
  readonly merge_vhd_file?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly merge_vhd_directory?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly delta_transfer?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly first_delta?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly nbd_transfer?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly restore_read?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly huge_2040g?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly listing?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly merge_vs_xo?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly s3?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly job_50_vms?: { readonly [key: string]: Json | ImplResult | undefined }
  readonly peak_rss_mib: Readonly<Record<string, number | null>>
  readonly targets: readonly TargetCheck[]
}

const MiB = 2 ** 20
/** throughput of a measured result, bytes per millisecond */
const rate = (result: ImplResult | undefined): number | undefined =>
  result?.status === 'measured' && result.bytes !== undefined && result.median_ms > 0 ? result.bytes / result.median_ms : undefined

function mergeShapeJson(shape: MergeShape): Json {
  return {
    virtual_size_gib: shape.virtualSize / GiB,
    parent_blocks: shape.parentBlocks,
    child_blocks: shape.childBlocks,
    overlapping_blocks: shape.overlapping,
    changed_mib: (shape.childBlocks * 2 * MiB) / MiB,
  }
}

export async function runBenchmark(config: BenchConfig, opts: RunOptions): Promise<BenchResults> {
  const began = Date.now()
  const loadAtStart = loadAverages()
  await mkdir(opts.workRoot, { recursive: true })
  const workDir = await mkdtemp(join(opts.workRoot, 'run-'))
  const ctx: CaseContext = { workDir, rounds: config.rounds, seed: config.seed, cpuProfileDir: opts.cpuProfileDir, log: opts.log }
  const machine = await machineInfo(workDir)
  const want = (name: CaseName): boolean => config.cases.includes(name)
  const targets: TargetCheck[] = []
  const rss: Record<string, number | null> = {}
  const out: { -readonly [K in keyof BenchResults]?: BenchResults[K] } = {}
  try {
    let mergeFile: MergeCaseRun | undefined
    // ours against Xen Orchestra's merge engine, measured in the merge cases (same chains, same rounds)
    const mergeVsXo: { file?: { ours: ImplResult; xo: ImplResult }; directory?: { ours: ImplResult; xo: ImplResult }; s3?: { ours: ImplResult; xo: ImplResult } } = {}
    if (want('merge_vhd_file')) {
      mergeFile = await runMergeCase(ctx, {
        name: 'merge_vhd_file',
        format: 'file',
        shape: config.merge,
        impls: ['ours', 'vhd-lib', 'xo', 'floor'],
        rounds: config.rounds,
        seedOffset: 1,
      })
      const { ours, 'vhd-lib': vhdLib, xo, floor } = mergeFile.results as Record<'ours' | 'vhd-lib' | 'xo' | 'floor', ImplResult>
      const oursOverFloor = ratio(medianOf(ours), medianOf(floor))
      const oursOverVhdLib = ratio(medianOf(ours), medianOf(vhdLib))
      out.merge_vhd_file = {
        config: mergeShapeJson(config.merge),
        ours,
        vhd_lib: vhdLib,
        floor,
        ours_over_floor: oursOverFloor,
        ours_over_vhdlib: oursOverVhdLib,
        vhdlib_over_floor: ratio(medianOf(vhdLib), medianOf(floor)),
        xo_over_floor: ratio(medianOf(xo), medianOf(floor)),
      }
      mergeVsXo.file = { ours, xo }
      rss['merge_vhd_file'] = rssOf(ours)
      targets.push(
        checkOverFloor('merge_vhd_file: ours / I/O floor (time)', '<= 1.3', oursOverFloor, v => v <= 1.3),
        check('merge_vhd_file: ours / vhd-lib (time)', '< 1', oursOverVhdLib, v => v < 1),
        check('merge_vhd_file: every merged disk verified', 'true', verifiedAll(ours, vhdLib, xo, floor), v => v === 1),
      )
    }
    if (want('merge_vhd_directory')) {
      const run = await runMergeCase(ctx, {
        name: 'merge_vhd_directory',
        format: 'directory',
        shape: config.merge,
        impls: ['ours', 'vhd-lib', 'xo'],
        rounds: config.rounds,
        seedOffset: 2,
      })
      const { ours, 'vhd-lib': vhdLib, xo } = run.results as Record<'ours' | 'vhd-lib' | 'xo', ImplResult>
      mergeVsXo.directory = { ours, xo }
      const oursOverVhdLib = ratio(medianOf(ours), medianOf(vhdLib))
      const blockBytes = run.oursBlockIo === undefined ? null : run.oursBlockIo.read + run.oursBlockIo.written
      out.merge_vhd_directory = {
        config: mergeShapeJson(config.merge),
        ours,
        vhd_lib: vhdLib,
        ours_over_vhdlib: oursOverVhdLib,
        ours_block_bytes_read: run.oursBlockIo?.read ?? null,
        ours_block_bytes_written: run.oursBlockIo?.written ?? null,
        ours_block_bitmap_bytes_read: run.oursBlockIo?.bitmapRead ?? null,
        ours_syscall_bytes_read: run.oursProcessIo?.rchar ?? null,
        ours_syscall_bytes_written: run.oursProcessIo?.wchar ?? null,
      }
      rss['merge_vhd_directory'] = rssOf(ours)
      targets.push(
        check('merge_vhd_directory: ours / vhd-lib (time)', '<= 1', oursOverVhdLib, v => v <= 1),
        check('merge_vhd_directory: block data bytes read + written by ours', '0', blockBytes, v => v === 0),
        check('merge_vhd_directory: every merged disk verified', 'true', verifiedAll(ours, vhdLib, xo), v => v === 1),
      )
    }

    let transferOurs: ImplResult | undefined
    if (want('delta_transfer')) {
      const run = await runTransferCase(ctx, { name: 'delta_transfer', shape: config.transfer, rounds: config.rounds })
      transferOurs = run.ours
      // same delta both ways: the rate ratio is the inverse time ratio
      const oursOverRaw = ratio(medianOf(run.raw), medianOf(run.ours))
      out.delta_transfer = {
        config: {
          disk_size_gib: config.transfer.diskSize / GiB,
          initial_blocks: config.transfer.initialBlocks,
          changed_blocks: config.transfer.changedBlocks,
          changed_mib: config.transfer.changedBlocks * 2,
        },
        ours: run.ours,
        raw: run.raw,
        ours_over_raw: oursOverRaw,
        // the simulated pool's VM.snapshot (copy-on-write: it copies no data), on lines of their
        // own: within our run, from its start to its snapshot taken (part of ours, never
        // subtracted from it); before each raw stream (not part of the raw stream's time)
        ours_snapshot: run.oursSnapshot,
        raw_snapshot: run.rawSnapshot,
        // our rate without the snapshot step of our own run, for comparison only
        ours_over_raw_without_pool_snapshot: ratio(
          medianOf(run.raw),
          medianOf(run.ours) === undefined || medianOf(run.oursSnapshot) === undefined ? undefined : medianOf(run.ours)! - medianOf(run.oursSnapshot)!,
        ),
      }
      rss['delta_transfer'] = rssOf(run.ours)
      targets.push(check('delta_transfer: ours rate / raw stream rate', '>= 0.9', oursOverRaw, v => v >= 0.9))
    }
    if (want('nbd_transfer')) {
      const run = await runNbdTransferCase(ctx, { shape: config.nbdTransfer, rounds: config.rounds })
      const over = (impl: (typeof NBD_IMPLS)[number], base: number | null | undefined): number | null => {
        const value = run.transferMs[impl]
        return value === null || base === null || base === undefined ? null : ratio(value, base)
      }
      out.nbd_transfer = {
        config: {
          disk_size_gib: config.nbdTransfer.diskSize / GiB,
          initial_blocks: config.nbdTransfer.initialBlocks,
          changed_blocks: config.nbdTransfer.changedBlocks,
          changed_mib: config.nbdTransfer.changedBlocks * 2,
          pool_profile: 'xcp-ng-8.3-nbd (TLS)',
        },
        export: run.runs.export,
        nbd_1: run.runs.nbd_1,
        nbd_2: run.runs.nbd_2,
        nbd_4: run.runs.nbd_4,
        transfer_ms: run.transferMs,
        // time ratios of the transfer step (lower is better): NBD with N connections / HTTP export
        nbd_1_over_export: over('nbd_1', run.transferMs.export),
        nbd_2_over_export: over('nbd_2', run.transferMs.export),
        nbd_4_over_export: over('nbd_4', run.transferMs.export),
        // the whole run (snapshot, changed-block listing, transfer, commit, data_destroy)
        run_nbd_2_over_export: ratio(medianOf(run.runs.nbd_2), medianOf(run.runs.export)),
        reference_sr_bytes: run.referenceBytes,
      }
      rss['nbd_transfer'] = Math.max(...NBD_IMPLS.map(impl => rssOf(run.runs[impl]) ?? 0))
      const exportBytes = run.referenceBytes.export
      const nbdBytes = run.referenceBytes.nbd_2
      targets.push(
        check('nbd_transfer: transfer time, NBD 2 connections / HTTP export', '<= 1', over('nbd_2', run.transferMs.export), v => v <= 1),
        check('nbd_transfer: every run a delta', 'true', verifiedAll(...NBD_IMPLS.map(impl => run.runs[impl])), v => v === 1),
        check(
          'nbd_transfer: SR bytes of the reference, CBT / HTTP export',
          '< 0.01',
          exportBytes === null || nbdBytes === null || exportBytes === 0 ? null : nbdBytes / exportBytes,
          v => v < 0.01,
        ),
      )
    }
    if (want('first_delta')) {
      // each round writes and backs up a fresh full: at most 3 rounds
      const run = await runFirstDeltaCase(ctx, config.firstDelta, Math.min(config.rounds, 3))
      const firstOverLater = ratio(medianOf(run.first), medianOf(run.later))
      out.first_delta = {
        config: {
          disk_size_gib: config.firstDelta.diskSize / GiB,
          full_gib: (config.firstDelta.fullBlocks * 2 * MiB) / GiB,
          changed_mib: config.firstDelta.changedBlocks * 2,
        },
        first_delta: run.first,
        later_delta: run.later,
        first_over_later: firstOverLater,
      }
      rss['first_delta'] = rssOf(run.first)
      targets.push(
        check('first_delta: first delta after a full / a later delta of the same change (time)', '<= 1.2', firstOverLater, v => v <= 1.2),
        check('first_delta: every run was a delta', 'true', verifiedAll(run.first, run.later), v => v === 1),
      )
    }
    if (want('restore_read')) {
      const run = await runRestoreCase(ctx, config.restore)
      const oursOverSingle = ratio(rate(run.ours), rate(run.singleFile))
      out.restore_read = {
        config: {
          virtual_size_gib: config.restore.virtualSize / GiB,
          files: config.restore.deltas + 1,
          full_blocks: config.restore.fullBlocks,
          delta_blocks: config.restore.deltaBlocks,
        },
        ours: run.ours,
        single_file: run.singleFile,
        single_file_checked: run.singleFileChecked,
        ours_over_single_file: oursOverSingle,
        // rate ratios, informative: what hashing every block costs a single-threaded reader
        single_file_checked_over_single_file: ratio(rate(run.singleFileChecked), rate(run.singleFile)),
        ours_over_single_file_checked: ratio(rate(run.ours), rate(run.singleFileChecked)),
      }
      rss['restore_read'] = rssOf(run.ours)
      targets.push(
        check(`restore_read: ours rate over ${config.restore.deltas + 1} files, every block checked / single file rate`, '>= 0.9', oursOverSingle, v => v >= 0.9),
        check('restore_read: chain stream verified', 'true', verifiedAll(run.ours), v => v === 1),
      )
    }
    if (want('huge_2040g')) {
      const hugeCtx = { ...ctx, rounds: config.hugeRounds }
      const merge = await runMergeCase(hugeCtx, {
        name: 'merge_vhd_file_2040g',
        format: 'file',
        shape: { ...config.merge, virtualSize: config.hugeVirtualSize },
        impls: ['ours'],
        rounds: config.hugeRounds,
        seedOffset: 1,
      })
      const transfer = await runTransferCase(hugeCtx, {
        name: 'delta_transfer_2040g',
        shape: { ...config.transfer, diskSize: config.hugeVirtualSize },
        rounds: config.hugeRounds,
      })
      const hugeMerge = merge.results.ours!
      const mergeScale = ratio(medianOf(hugeMerge), mergeFile === undefined ? undefined : medianOf(mergeFile.results.ours!))
      const transferScale = ratio(medianOf(transfer.ours), transferOurs === undefined ? undefined : medianOf(transferOurs))
      out.huge_2040g = {
        virtual_size_gib: config.hugeVirtualSize / GiB,
        merge_ours: hugeMerge,
        transfer_ours: transfer.ours,
        transfer_raw: transfer.raw,
        merge_time_over_20g: mergeScale,
        transfer_time_over_20g: transferScale,
      }
      rss['merge_vhd_file_2040g'] = rssOf(hugeMerge)
      rss['delta_transfer_2040g'] = rssOf(transfer.ours)
      targets.push(
        check('2,040 GiB merge time / 20 GiB merge time (same changed data)', '<= 1.3', mergeScale, v => v <= 1.3),
        check('2,040 GiB transfer time / 20 GiB transfer time (same changed data)', '<= 1.3', transferScale, v => v <= 1.3),
        check('2,040 GiB merged disk verified', 'true', verifiedAll(hugeMerge), v => v === 1),
      )
    }
    if (want('listing')) {
      const run = await runListingCase(ctx, config.listing)
      const { api, cli, retention, plain, 'plain-process': plainProcess } = run.results
      const apiOverPlain = ratio(medianOf(api), medianOf(plain))
      const cliOverPlain = ratio(medianOf(cli), medianOf(plainProcess))
      const retentionOverPlain = ratio(medianOf(retention), medianOf(plain))
      out.listing = {
        config: { vms: config.listing.vms, points_per_vm: config.listing.pointsPerVm, disks_per_vm: config.listing.disksPerVm, restore_points: run.points },
        list_restore_points: api,
        cli_list: cli,
        retention_pass: retention,
        plain,
        plain_process: plainProcess,
        api_over_plain: apiOverPlain,
        cli_over_plain_process: cliOverPlain,
        retention_over_plain: retentionOverPlain,
      }
      rss['listing'] = Math.max(...[api, cli, retention].map(rssOf).map(v => v ?? 0))
      const n = run.points.toLocaleString('en-US')
      targets.push(
        check(`listing: listRestorePoints of ${n} restore points / plain read (time)`, '<= 2', apiOverPlain, v => v <= 2),
        check(`listing: DR CLI list (a process) / plain read in a process (time)`, '<= 2', cliOverPlain, v => v <= 2),
        check(`listing: retention pass over every VM / plain read (time)`, '<= 2', retentionOverPlain, v => v <= 2),
        check('listing: every restore point listed, none removed', 'true', verifiedAll(api, cli, retention, plain, plainProcess), v => v === 1),
      )
    }
    if (want('job_50_vms')) {
      const shape = config.jobManyVms
      // a round is four runs of the whole job (200 VM backups in the full run): one round
      const run = await runJobManyVmsCase(ctx, shape, 1)
      const notRun: ImplResult = { status: 'skipped', reason: 'skipped: not run' }
      const { at_1: at1 = notRun, at_2: at2 = notRun, at_4: at4 = notRun, no_change_at_1: noChange = notRun } = run.results
      const perVm = (result: ImplResult): number | null => (result.status === 'measured' ? Math.round(result.median_ms / shape.vms) : null)
      const at4OverAt1 = ratio(medianOf(at4), medianOf(at1))
      // how many cores a run kept busy (ours + the simulated pool), and the least time 4 at once
      // could take if it only had to fit its own CPU time onto this machine's cores
      const coresBusy = (kind: keyof typeof run.cpu): number | null => {
        const cpu = run.cpu[kind]
        return cpu === undefined ? null : Math.round(((cpu.oursMs + cpu.poolMs) / cpu.wallMs) * 100) / 100
      }
      const cpuOf = (kind: keyof typeof run.cpu): Json =>
        run.cpu[kind] === undefined ? null : { ours_ms: Math.round(run.cpu[kind]!.oursMs), pool_ms: Math.round(run.cpu[kind]!.poolMs), cores_busy: coresBusy(kind) }
      const at4Cpu = run.cpu.at_4
      const cpuFloorAt4OverAt1 = at4Cpu === undefined ? null : ratio((at4Cpu.oursMs + at4Cpu.poolMs) / machine.cores, medianOf(at1))
      out.job_50_vms = {
        config: { vms: shape.vms, disks_per_vm: shape.disksPerVm, disk_size_gib: shape.diskSize / GiB, changed_mib_per_disk: shape.changedBlocks * 2 },
        at_1: at1,
        at_2: at2,
        at_4: at4,
        no_change_at_1: noChange,
        per_vm_ms_at_1: perVm(at1),
        per_vm_ms_at_2: perVm(at2),
        per_vm_ms_at_4: perVm(at4),
        fixed_cost_per_vm_ms: perVm(noChange),
        at_2_over_at_1: ratio(medianOf(at2), medianOf(at1)),
        at_4_over_at_1: at4OverAt1,
        cpu_at_1: cpuOf('at_1'),
        cpu_at_2: cpuOf('at_2'),
        cpu_at_4: cpuOf('at_4'),
        cpu_no_change_at_1: cpuOf('no_change_at_1'),
        cpu_floor_at_4_over_at_1: cpuFloorAt4OverAt1,
      }
      rss['job_50_vms'] = Math.max(...[at1, at2, at4, noChange].map(rssOf).map(v => v ?? 0))
      targets.push(
        check(`job_50_vms: ${shape.vms} VMs × ${shape.disksPerVm} disks, 4 at once / one at a time (time)`, '<= 0.4', at4OverAt1, v => v <= 0.4),
        check('job_50_vms: every VM backed up, every disk a delta', 'true', verifiedAll(...Object.values(run.results)), v => v === 1),
      )
    }
    if (want('s3')) {
      const run = await runS3Case(ctx, config.s3)
      const { ours, 'vhd-lib': vhdLib, xo } = run.merge
      mergeVsXo.s3 = { ours, xo }
      const blocksPerS = (result: ImplResult): number | null => (result.status === 'measured' ? Math.round((run.childBlocks / result.median_ms) * 1000 * 10) / 10 : null)
      const transferRatio = run.transfer === undefined ? null : ratio(medianOf(run.transfer.raw), medianOf(run.transfer.ours))
      const mergeRatio = ratio(medianOf(ours), medianOf(vhdLib))
      out.s3 = {
        config: {
          transfer_disk_size_gib: config.s3.transfer.diskSize / GiB,
          transfer_changed_mib: config.s3.transfer.changedBlocks * 2,
          merge: mergeShapeJson(config.s3.merge),
        },
        transfer_ours: run.transfer?.ours ?? { status: 'skipped', reason: run.skipped ?? 'skipped: not run' },
        transfer_raw_multipart: run.transfer?.raw ?? { status: 'skipped', reason: run.skipped ?? 'skipped: not run' },
        transfer_ours_over_raw: transferRatio,
        transfer_ours_snapshot: run.transfer?.oursSnapshot ?? { status: 'skipped', reason: run.skipped ?? 'skipped: not run' },
        merge_ours: ours,
        merge_vhd_lib: vhdLib,
        merge_xo: xo,
        merge_ours_blocks_per_s: blocksPerS(ours),
        merge_vhdlib_blocks_per_s: blocksPerS(vhdLib),
        merge_xo_blocks_per_s: blocksPerS(xo),
        merge_ours_over_vhdlib: mergeRatio,
      }
      if (run.transfer !== undefined) rss['s3_delta_transfer'] = rssOf(run.transfer.ours)
      rss['s3_merge'] = rssOf(ours)
      targets.push(
        check('s3: delta transfer, ours rate / raw stream as one multipart upload', '>= 0.9', transferRatio, v => v >= 0.9),
        check('s3: merge of VHD directories, ours / vhd-lib (time)', '<= 1', mergeRatio, v => v <= 1),
        check('s3: every merged disk verified, every transfer a delta', 'true', verifiedAll(ours, vhdLib, xo, ...(run.transfer === undefined ? [] : [run.transfer.ours])), v => v === 1),
      )
    }
    if (mergeVsXo.file !== undefined || mergeVsXo.directory !== undefined || mergeVsXo.s3 !== undefined) {
      const section: Record<string, Json | ImplResult> = {
        engine: '@xen-orchestra/backup-archive 1.1.2 MergeRemoteDisk',
        config: mergeShapeJson(config.merge),
      }
      const labels = { file: ['file_local', 'VHD files, local'], directory: ['directory_local', 'VHD directories, local'], s3: ['directory_s3', 'VHD directories, S3'] } as const
      for (const [where, pair] of Object.entries(mergeVsXo) as [keyof typeof labels, { ours: ImplResult; xo: ImplResult }][]) {
        const [key, label] = labels[where]
        const value = ratio(medianOf(pair.ours), medianOf(pair.xo))
        section[`${key}_xo`] = pair.xo
        section[`${key}_ours_over_xo`] = value
        targets.push(check(`merge_vs_xo: ${label}: ours / XO's merge (time)`, '<= 0.8', value, v => v <= 0.8))
      }
      out.merge_vs_xo = section
    }
    const peaks = Object.values(rss).filter((v): v is number => v !== null)
    targets.push(check('peak RSS of ours, every case (MiB)', '< 200', peaks.length === 0 ? null : Math.max(...peaks), v => v < 200))
    const small = [rss['merge_vhd_file'], rss['delta_transfer']]
    const huge = [rss['merge_vhd_file_2040g'], rss['delta_transfer_2040g']]
    const growth = small.every(v => typeof v === 'number') && huge.every(v => typeof v === 'number')
      ? Math.max(huge[0]! - small[0]!, huge[1]! - small[1]!)
      : null
    targets.push(check('peak RSS growth from 20 GiB to 2,040 GiB (MiB)', '< 32', growth, v => v < 32))
  } finally {
    await rm(workDir, { recursive: true, force: true })
  }
  return {
    date: new Date(began).toISOString(),
    load_at_start: loadAtStart,
    load_at_end: loadAverages(),
    duration_s: Math.round((Date.now() - began) / 1000),
    machine,
    config,
    ...out,
    peak_rss_mib: rss,
    targets,
  }
}

/** 1 when every measured implementation verified its output, 0 when one did not, null when none was measured */
function verifiedAll(...results: ImplResult[]): number | null {
  const measured = results.filter(r => r.status === 'measured')
  if (measured.length === 0) return null
  return measured.every(r => r.status === 'measured' && r.verified !== false) ? 1 : 0
}
