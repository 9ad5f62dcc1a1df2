/**
 * Changed block tracking (CBT) and NBD: on a pool that offers both (XenServer 7.3 / XCP-ng 7.4 on,
 * a network of purpose `nbd` or `insecure_nbd`), a delta reads only the blocks
 * `VDI.list_changed_blocks` names, over NBD, and the reference snapshot keeps only its CBT
 * metadata between runs (`VDI.data_destroy`). Three hooks, in the order the steps run:
 *
 * - `choose-transport` (selectDisks): the job's `transport` — `export` always reads with the HTTP
 *   export; `auto` and `nbd` use NBD + CBT where the pool offers them, else the HTTP export with a
 *   log line saying why (a warning for `nbd`). With NBD, CBT is enabled on each disk before the
 *   snapshot, so that the snapshot carries it.
 * - `changed-blocks` (chooseBase): for each delta, the blocks changed since the reference
 *   snapshot. Whatever breaks the tracking makes that disk a full with a warning that says which:
 *   the disk moved to another SR, CBT was disabled on it, it was resized, `list_changed_blocks`
 *   failed. Where the reference still has its data (the run that follows an HTTP-export run), the
 *   delta is read with the HTTP export instead, and the next one over NBD. A reference holding
 *   only CBT metadata is no base for the HTTP export: with that transport, a full.
 *   (A reference snapshot whose disk was deleted is already a full: chooseBase finds no base.)
 * - `keep-only-cbt-metadata` (rotateReference): once the restore point is committed, the new
 *   reference's disks lose their data (`VDI.data_destroy`); a failure is a warning (the snapshot
 *   then keeps its data until the next run).
 */
import { BackupError } from '../../errors.js'
import type { Ref } from '../../xapi/client.js'
import { CBT_METADATA, changedVhdBlocks, dataDestroy, enableCbt, listChangedBlocks, nbdInfo } from '../../xapi/cbt.js'
import { asSr, fetchRecord, fetchVdi } from '../../xapi/records.js'
import type { VdiRecord } from '../../xapi/records.js'
import { xapiErrorCode } from '../../xapi/xapi-error.js'
import type { DiskBase, SourceDisk, VmRunContext } from '../context.js'
import { warn } from '../context.js'
import type { BackupHook } from './hook.js'

/** NBD connections per disk when the job does not say */
export const DEFAULT_NBD_CONNECTIONS = 2

const HOW_TO_ENABLE = 'give a network of the pool the purpose nbd: xe network-param-add param-name=purpose param-key=nbd uuid=<network uuid>'

function describe(error: unknown): string {
  const code = xapiErrorCode(error)
  const message = error instanceof Error ? error.message : String(error)
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message
}

/** why this run cannot read over NBD, or nothing when it can */
async function nbdUnavailable(ctx: VmRunContext): Promise<string | undefined> {
  const [first] = ctx.disks
  if (first === undefined) return 'the VM has no disk to back up'
  const pool = ctx.pool === undefined ? 'the pool' : `the pool (${`${ctx.pool.productBrand} ${ctx.pool.productVersion}`.trim()})`
  try {
    const infos = await nbdInfo(ctx.xapi, first.vdi.$ref)
    return infos.length === 0 ? `no network of ${pool} has the purpose nbd or insecure_nbd (${HOW_TO_ENABLE})` : undefined
  } catch (error) {
    if (xapiErrorCode(error) === 'MESSAGE_METHOD_UNKNOWN') return `${pool} has no changed block tracking nor NBD (XenServer 7.3 / XCP-ng 7.4 and later have them)`
    return `VDI.get_nbd_info failed: ${describe(error)}`
  }
}

export const chooseTransport: BackupHook = {
  step: 'selectDisks',
  name: 'choose-transport',
  async run(ctx) {
    const wanted = ctx.job.transport ?? 'auto'
    const connections = Math.max(1, Math.floor(ctx.job.nbdConnections ?? DEFAULT_NBD_CONNECTIONS))
    if (wanted === 'export') {
      ctx.transport = { kind: 'export', connections: 0 }
      return
    }
    const unavailable = await nbdUnavailable(ctx)
    if (unavailable !== undefined) {
      ctx.transport = { kind: 'export', connections: 0 }
      const message = `disks read with the HTTP export, not NBD: ${unavailable}`
      if (wanted === 'nbd') warn(ctx, message)
      else ctx.reporter.info(message)
      return
    }
    ctx.transport = { kind: 'nbd', connections }
    for (const disk of ctx.disks) {
      const wasEnabled = disk.vdi.cbt_enabled === true
      if (wasEnabled) {
        ctx.tracking.set(disk.vdi.$ref, { tracked: true, wasEnabled })
        continue
      }
      try {
        await enableCbt(ctx.xapi, disk.vdi.$ref)
        ctx.tracking.set(disk.vdi.$ref, { tracked: true, wasEnabled })
        ctx.reporter.info(`disk "${disk.vdi.name_label}": changed block tracking enabled`, { vdi: disk.vdi.uuid })
      } catch (error) {
        const reason = `changed block tracking cannot be enabled on it (${describe(error)})`
        ctx.tracking.set(disk.vdi.$ref, { tracked: false, wasEnabled, reason })
        warn(ctx, `disk "${disk.vdi.name_label}": read with the HTTP export: ${reason}`, { vdi: disk.vdi.uuid })
      }
    }
    ctx.reporter.info(`disks read over NBD (${connections} connection(s) per disk): only the blocks changed block tracking lists`, { connections })
  },
}

async function srName(ctx: VmRunContext, ref: Ref): Promise<string> {
  try {
    return `"${(await fetchRecord(ctx.xapi, 'SR', ref, asSr)).name_label}"`
  } catch {
    return ref
  }
}

/** why the tracking between the reference disk and this run's snapshot is broken, if it is */
async function brokenTracking(ctx: VmRunContext, disk: SourceDisk, base: VdiRecord, snapshot: VdiRecord): Promise<string | undefined> {
  if (base.SR !== disk.vdi.SR) {
    return `the disk moved from SR ${await srName(ctx, base.SR)} to SR ${await srName(ctx, disk.vdi.SR)} since the reference snapshot (changed block tracking does not follow a migration)`
  }
  const tracking = ctx.tracking.get(disk.vdi.$ref)
  if (tracking?.wasEnabled === false && (base.cbt_enabled === true || base.type === CBT_METADATA)) {
    return 'changed block tracking was disabled on the disk since the reference snapshot'
  }
  if (snapshot.virtual_size !== base.virtual_size) {
    return `the disk was resized since the reference snapshot (${base.virtual_size} → ${snapshot.virtual_size} bytes)`
  }
  return undefined
}

async function withChangedBlocks(ctx: VmRunContext, disk: SourceDisk, base: Extract<DiskBase, { mode: 'delta' }>): Promise<DiskBase> {
  const name = disk.vdi.name_label
  const baseVdi = await fetchVdi(ctx.xapi, base.baseVdi)
  const metadataOnly = baseVdi.type === CBT_METADATA
  const full = (why: string): DiskBase => {
    warn(ctx, `disk "${name}": full export, ${why}`, { vdi: disk.vdi.uuid })
    return { mode: 'full', reason: why }
  }
  // where the reference still has its data, the HTTP export gives the same delta
  const exportDelta = (why: string): DiskBase => {
    if (metadataOnly) return full(why)
    ctx.reporter.info(`disk "${name}": delta read with the HTTP export: ${why}`, { vdi: disk.vdi.uuid })
    return base
  }
  if (ctx.transport?.kind !== 'nbd') {
    return metadataOnly ? full(`the reference snapshot of this disk holds only its changed block tracking metadata (an NBD run destroyed its data) and the HTTP export needs a base with data`) : base
  }
  const tracking = ctx.tracking.get(disk.vdi.$ref)
  if (tracking?.tracked !== true) return exportDelta(tracking?.reason ?? 'changed block tracking is off on this disk')
  const snapshot = ctx.snapshotDisks.get(disk.vdi.$ref)
  if (snapshot === undefined) throw new BackupError('SNAPSHOT_FAILED', `no snapshot of disk "${name}"`, { vdi: disk.vdi.uuid })
  const broken = await brokenTracking(ctx, disk, baseVdi, snapshot)
  if (broken !== undefined) return baseVdi.SR !== disk.vdi.SR ? full(broken) : exportDelta(broken)
  if (baseVdi.cbt_enabled !== true && !metadataOnly) {
    return exportDelta('the reference snapshot was taken before changed block tracking was enabled on this disk; the next delta is read over NBD')
  }
  let blocks: number[]
  try {
    blocks = changedVhdBlocks(await listChangedBlocks(ctx.xapi, baseVdi.$ref, snapshot.$ref), snapshot.virtual_size)
  } catch (error) {
    ctx.signal.throwIfAborted()
    return exportDelta(`VDI.list_changed_blocks failed: ${describe(error)}`)
  }
  ctx.reporter.info(`disk "${name}": ${blocks.length} changed block(s) of 2 MiB to read over NBD`, { vdi: disk.vdi.uuid, blocks: blocks.length })
  return { ...base, changed: { blocks } }
}

export const changedBlocks: BackupHook = {
  step: 'chooseBase',
  name: 'changed-blocks',
  async run(ctx) {
    for (const disk of ctx.disks) {
      const base = ctx.bases.get(disk.vdi.$ref)
      if (base?.mode !== 'delta') continue
      ctx.bases.set(disk.vdi.$ref, await withChangedBlocks(ctx, disk, base))
    }
  },
}

export const keepOnlyCbtMetadata: BackupHook = {
  step: 'rotateReference',
  name: 'keep-only-cbt-metadata',
  async run(ctx) {
    if (ctx.transport?.kind !== 'nbd' || !ctx.exported) return
    for (const disk of ctx.disks) {
      const snapshot = ctx.snapshotDisks.get(disk.vdi.$ref)
      if (snapshot === undefined || ctx.tracking.get(disk.vdi.$ref)?.tracked !== true) continue
      try {
        const current = await fetchVdi(ctx.xapi, snapshot.$ref)
        if (current.cbt_enabled !== true || current.type === CBT_METADATA) continue
        await dataDestroy(ctx.xapi, snapshot.$ref)
        ctx.reporter.info(`disk "${disk.vdi.name_label}": the reference snapshot keeps only its changed block tracking metadata`, { vdi: disk.vdi.uuid, snapshot: snapshot.uuid })
      } catch (error) {
        ctx.signal.throwIfAborted()
        warn(ctx, `disk "${disk.vdi.name_label}": the reference snapshot ${snapshot.uuid} keeps its data until the next run: VDI.data_destroy failed: ${describe(error)}`, { vdi: disk.vdi.uuid })
      }
    }
  },
}
