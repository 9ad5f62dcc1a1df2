import { BackupError } from '../../errors.js'
import { assertSafeId, formatTimestamp, vhdPath } from '../../repository/layout.js'
import { isVhdAlias } from '../../repository/vhd-lib.js'
import { writeVhd } from '../../repository/write-vhd.js'
import type { WriteVhdResult } from '../../repository/write-vhd.js'
import type { Readable } from 'node:stream'
import { NbdDisk, NbdError } from '../../nbd/index.js'
import { nbdInfo } from '../../xapi/cbt.js'
import { exportVdiAsVhd } from '../../xapi/export-vdi.js'
import { nbdDeltaVhd } from '../../xapi/nbd-delta.js'
import type { VdiRecord } from '../../xapi/records.js'
import type { DiskBase, SourceDisk, VmRunContext } from '../context.js'
import type { DiskResult, RunReporter } from '../job.js'
import { watchInactivity } from '../inactivity-timeout.js'
import { settleWithin } from '../settle-within.js'

/** how long XAPI gets to confirm an export whose VHD already arrived */
const EXPORT_CONFIRMATION_MS = 10_000

/** a transfer that receives no bytes for this long fails, unless the settings say otherwise */
export const DEFAULT_TRANSFER_TIMEOUT_MS = 10 * 60_000

function transferTimeoutMs(ctx: VmRunContext): number {
  const ms = ctx.settings.transferTimeoutMs
  return ms !== undefined && Number.isFinite(ms) && ms > 0 ? ms : DEFAULT_TRANSFER_TIMEOUT_MS
}

function formatDuration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`
}

/** VHD directories where the remote asks for them (always on object storage) or the settings do */
export function usesVhdDirectory(ctx: VmRunContext): boolean {
  return ctx.settings.useVhdDirectory === true || ctx.handler.useVhdDirectory() || ctx.handler.type === 's3'
}

/**
 * The format of one disk's new VHD: a full takes the format the settings and the remote ask for
 * now; a delta takes its parent's, so a chain is all VHD files or all VHD directories (a merge
 * never mixes them) and a change of the setting applies from the next full of each chain on.
 */
export function vhdDirectoryFor(ctx: VmRunContext, base: DiskBase): boolean {
  return base.mode === 'delta' ? isVhdAlias(base.parentPath) : usesVhdDirectory(ctx)
}

/** writes a VHD stream into `path`; a stream that stalls fails the transfer instead of holding the run */
async function writeWatched(ctx: VmRunContext, disk: VdiRecord, base: DiskBase, path: string, reporter: RunReporter, stream: Readable, what: string): Promise<WriteVhdResult> {
  // an error of the body may come while the writer awaits the remote, between two reads:
  // it must never be an uncaught 'error' event. The writer still sees it (`stream.errored`).
  stream.on('error', () => {})
  const timeoutMs = transferTimeoutMs(ctx)
  const watchdog = watchInactivity(timeoutMs, () => {
    stream.destroy(
      new BackupError('TRANSFER_FAILED', `${what} of disk "${disk.name_label}" of VM ${ctx.vmUuid} received no data for ${formatDuration(timeoutMs)}`, {
        vm: ctx.vmUuid,
        vdi: disk.uuid,
        timeoutMs,
      }),
    )
  })
  let expected: number | undefined
  try {
    return await writeVhd(ctx.handler, path, stream, {
      uuid: disk.uuid,
      ...(base.mode === 'delta' ? { parent: base.parentPath } : {}),
      signal: ctx.signal,
      // against the bytes this export really carries (its BAT's blocks), not the disk's virtual size
      onSize: bytes => void (expected = bytes),
      onProgress: bytes => {
        watchdog.touch()
        reporter.progress(Math.min(99, (100 * bytes) / Math.max(1, expected ?? disk.virtual_size)))
      },
    })
  } finally {
    watchdog.stop()
    stream.destroy()
  }
}

/** exports one snapshot disk straight into `path`; resolves once XAPI confirmed the export too */
async function exportIntoVhd(ctx: VmRunContext, disk: VdiRecord, base: DiskBase, path: string, reporter: RunReporter): Promise<WriteVhdResult> {
  const { stream, task } = await exportVdiAsVhd(ctx.xapi, disk.$ref, base.mode === 'delta' ? { base: base.baseVdi } : {})
  const written = await writeWatched(ctx, disk, base, path, reporter, stream, 'export')
  // the VHD arrived whole and was checked; XAPI's confirmation is awaited, not forever (it
  // never comes from a pool that became unreachable once the data was sent)
  const confirmation = await settleWithin(task, EXPORT_CONFIRMATION_MS, ctx.signal)
  if (!confirmation.settled) {
    reporter.warning(`XAPI did not confirm the export within ${EXPORT_CONFIRMATION_MS / 1000} s; the VHD was received whole and checked`)
  }
  return written
}

/**
 * Reads the blocks changed block tracking listed from the snapshot disk over NBD (several
 * connections) and writes them as the same differencing VHD the HTTP export would have given.
 */
async function nbdIntoVhd(ctx: VmRunContext, disk: VdiRecord, base: Extract<DiskBase, { mode: 'delta' }>, blocks: readonly number[], path: string, reporter: RunReporter): Promise<WriteVhdResult> {
  const connections = ctx.transport?.connections ?? 1
  const fail = (message: string, cause?: unknown): BackupError =>
    new BackupError('TRANSFER_FAILED', `NBD read of disk "${disk.name_label}": ${message}`, { vm: ctx.vmUuid, vdi: disk.uuid }, { cause })
  const infos = await nbdInfo(ctx.xapi, disk.$ref)
  if (infos.length === 0) throw fail('XAPI gives no NBD address for it (no network of purpose nbd or insecure_nbd any more)')
  let nbd: NbdDisk
  try {
    nbd = await NbdDisk.open(infos, {
      connections,
      onRetry: ({ offset, attempt, error }) => reporter.info(`NBD read at ${offset} sent again (attempt ${attempt + 1}): ${error.message}`),
    })
  } catch (error) {
    throw fail((error as Error).message, error)
  }
  try {
    if (nbd.size !== disk.virtual_size) throw fail(`the NBD export has ${nbd.size} bytes, the disk ${disk.virtual_size}`)
    // one read in flight on each connection and the next block ready to send: 2 MiB a block, so a
    // transfer holds (connections + 1) × 2 MiB of disk data, however many blocks it sends
    const stream = nbdDeltaVhd(nbd, disk.virtual_size, blocks, { readAhead: connections + 1 })
    return await writeWatched(ctx, disk, base, path, reporter, stream, 'NBD read')
  } catch (error) {
    if (error instanceof BackupError && !(error.cause instanceof NbdError)) throw error
    const cause = error instanceof BackupError ? error.cause : error
    throw cause instanceof NbdError ? fail(cause.message, cause) : error
  } finally {
    await nbd.close()
  }
}

async function transferDisk(ctx: VmRunContext, { vdi }: SourceDisk, timestamp: string): Promise<void> {
  const snapshotDisk = ctx.snapshotDisks.get(vdi.$ref)
  const base = ctx.bases.get(vdi.$ref)
  if (snapshotDisk === undefined || base === undefined) {
    throw new BackupError('TRANSFER_FAILED', `disk "${vdi.name_label}" has no snapshot or no plan`, { vdi: vdi.uuid })
  }
  const path = vhdPath(ctx.vmUuid, assertSafeId('job', ctx.job.id), assertSafeId('vdi', vdi.uuid), timestamp, vhdDirectoryFor(ctx, base))
  // named `transfer` as XO's backup logs name the task they show with its size, duration and speed
  const reporter = ctx.reporter.child('transfer', { disk: vdi.name_label, vdi: vdi.uuid, mode: base.mode })
  const start = Date.now()
  // from here on, cleanup removes whatever this transfer leaves
  ctx.written.set(vdi.$ref, path)
  try {
    const written =
      base.mode === 'delta' && base.changed !== undefined
        ? await nbdIntoVhd(ctx, snapshotDisk, base, base.changed.blocks, path, reporter)
        : await exportIntoVhd(ctx, snapshotDisk, base, path, reporter)
    const result: DiskResult = {
      vdi: vdi.uuid,
      name: vdi.name_label,
      mode: base.mode,
      size: written.size,
      durationMs: Date.now() - start,
      checksum: written.checksum,
    }
    ctx.results.push(result)
    reporter.end({ status: 'success', data: { ...result, path } })
  } catch (error) {
    const message = `disk "${vdi.name_label}": ${error instanceof Error ? error.message : String(error)}`
    const failure =
      error instanceof BackupError
        ? error
        : new BackupError(ctx.signal.aborted ? 'CANCELLED' : 'TRANSFER_FAILED', message, { vdi: vdi.uuid }, { cause: error })
    reporter.end({ status: 'failure', error: failure })
    throw failure
  }
}

/** streams each disk from XAPI straight into its VHD on the remote, one disk after the other */
export async function transferDisks(ctx: VmRunContext): Promise<void> {
  if (ctx.date === undefined) {
    throw new BackupError('TRANSFER_FAILED', 'the restore point has no date', { vm: ctx.vmUuid })
  }
  const timestamp = formatTimestamp(ctx.date)
  for (const disk of ctx.disks) {
    await transferDisk(ctx, disk, timestamp)
  }
}
