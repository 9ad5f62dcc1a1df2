import { BackupError } from '../../errors.js'
import { formatTimestamp, metadataPath } from '../../repository/layout.js'
import { buildMetadata, writeMetadata } from '../../repository/metadata.js'
import { BACKUP_KEYS, setOtherConfig } from '../../xapi/other-config.js'
import type { Ref, XapiClient } from '../../xapi/client.js'
import { asNetwork, asSr, fetchRecord, fetchVbd, fetchVif } from '../../xapi/records.js'
import { xapiErrorCode } from '../../xapi/xapi-error.js'
import type { VmRunContext } from '../context.js'

const refsOf = (value: unknown): Ref[] => (Array.isArray(value) ? value.filter((ref): ref is Ref => typeof ref === 'string') : [])

/** network ref → VLAN tag of its first PIF, as Xen Orchestra records it (`$network$VLAN`) */
async function vlansOf(xapi: XapiClient, networks: readonly { $ref: Ref; PIFs?: unknown }[]): Promise<Record<string, number>> {
  const vlans: Record<string, number> = {}
  for (const network of networks) {
    const [pif] = refsOf(network.PIFs)
    if (pif === undefined) continue
    const vlan = Number(await xapi.call<number | string>('PIF.get_VLAN', pif))
    if (Number.isInteger(vlan)) vlans[network.$ref] = vlan
  }
  return vlans
}

/**
 * The contents of the snapshot's vTPMs (`VTPM.get_contents`), as Xen Orchestra backs them up.
 * One that cannot be read is recorded as `null` and the run warns: its restore will lack it.
 */
async function vtpmContents(ctx: VmRunContext, vtpms: readonly Ref[]): Promise<(string | null)[]> {
  const contents: (string | null)[] = []
  for (const vtpm of vtpms) {
    try {
      contents.push(await ctx.xapi.call<string>('VTPM.get_contents', vtpm))
    } catch (error) {
      if (xapiErrorCode(error) === 'MESSAGE_METHOD_UNKNOWN') continue
      contents.push(null)
      ctx.reporter.warning(`the contents of the VM's vTPM could not be read (${(error as Error).message}): this restore point restores without it`)
    }
  }
  return contents
}

/** the records of the snapshot the metadata describes: its drives, network interfaces, networks, SRs */
async function snapshotRecords(ctx: VmRunContext) {
  const { xapi } = ctx
  const snapshot = ctx.snapshot
  if (snapshot === undefined) {
    throw new BackupError('SNAPSHOT_FAILED', 'no snapshot to commit', { vm: ctx.vmUuid })
  }
  const vbds = await Promise.all(snapshot.VBDs.map(ref => fetchVbd(xapi, ref)))
  const vifs = await Promise.all(snapshot.VIFs.map(ref => fetchVif(xapi, ref)))
  const networks = await Promise.all([...new Set(vifs.map(vif => vif.network))].map(ref => fetchRecord(xapi, 'network', ref, asNetwork)))
  const vdis = ctx.disks.map(disk => ctx.snapshotDisks.get(disk.vdi.$ref)).filter(vdi => vdi !== undefined)
  const srs = await Promise.all([...new Set(vdis.map(vdi => vdi.SR))].map(ref => fetchRecord(xapi, 'SR', ref, asSr)))
  const networkVlans = await vlansOf(xapi, networks)
  const vtpms = await vtpmContents(ctx, refsOf(snapshot.VTPMs))
  const cdDrives = vbds.filter(vbd => vbd.type === 'CD').map(vbd => ({ userdevice: vbd.userdevice, bootable: vbd.bootable }))
  return { snapshot, vbds, vifs, networks, networkVlans, vdis, srs, vtpms, cdDrives }
}

/**
 * Writes the restore point's metadata, only once every disk of the VM landed intact on the
 * remote; then marks the snapshot (VM and disks) exported: from now on it is the base of the
 * next delta.
 */
export async function commitRestorePoint(ctx: VmRunContext): Promise<void> {
  const { xapi, job } = ctx
  if (ctx.vm === undefined || ctx.date === undefined || ctx.results.length !== ctx.disks.length) {
    throw new BackupError('TRANSFER_FAILED', `${ctx.results.length} of ${ctx.disks.length} disks transferred: nothing to commit`, { vm: ctx.vmUuid })
  }
  const { snapshot, vbds, vifs, networks, networkVlans, vdis, srs, vtpms, cdDrives } = await snapshotRecords(ctx)

  const vhds: Record<string, string> = {}
  const differencing: Record<string, boolean> = {}
  const blockChecksums: Record<string, string> = {}
  for (const disk of ctx.disks) {
    const vdi = ctx.snapshotDisks.get(disk.vdi.$ref)
    const path = ctx.written.get(disk.vdi.$ref)
    const result = ctx.results.find(candidate => candidate.vdi === disk.vdi.uuid)
    if (vdi === undefined || path === undefined || result === undefined) {
      throw new BackupError('TRANSFER_FAILED', `disk "${disk.vdi.name_label}" was not transferred`, { vm: ctx.vmUuid, vdi: disk.vdi.uuid })
    }
    vhds[vdi.$ref] = path
    differencing[vdi.$ref] = result.mode === 'delta'
    if (result.checksum !== undefined) {
      blockChecksums[vdi.$ref] = result.checksum
    }
  }

  const metadata = buildMetadata({
    job: { id: job.id },
    scheduleId: job.scheduleId ?? '',
    timestamp: ctx.date,
    vm: ctx.vm,
    vmSnapshot: snapshot,
    vbds,
    vdis,
    vifs,
    networks,
    networkVlans,
    srs,
    vtpms,
    cdDrives,
    sourceVdis: ctx.disks.map(disk => disk.vdi),
    vhds,
    differencing,
    size: ctx.results.reduce((total, result) => total + result.size, 0),
    excluded: ctx.excluded.map(({ vdi, name, reason }) => ({ vdi, name, reason })),
    blockChecksums,
  })
  const path = metadataPath(ctx.vmUuid, formatTimestamp(ctx.date))
  await writeMetadata(ctx.handler, path, metadata)
  ctx.restorePoint = path
  ctx.reporter.info(`restore point ${path} written`, { size: metadata.size })

  const exported = { [BACKUP_KEYS.exported]: 'true' }
  await setOtherConfig(xapi, 'VM', snapshot.$ref, exported)
  for (const vdi of vdis) {
    await setOtherConfig(xapi, 'VDI', vdi.$ref, exported)
  }
  ctx.exported = true
}
