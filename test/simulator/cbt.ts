/**
 * Changed block tracking and NBD, as pools from XenServer 7.3 / XCP-ng 7.4 play them:
 *
 * - `VDI.enable_cbt` / `VDI.disable_cbt` set `cbt_enabled`; a VDI's tracking is one unbroken log
 *   from its enabling on: disabling it ends the log, enabling again starts a new one, and so does
 *   a migration of the disk to another SR. A snapshot of a tracked disk carries the log as it is.
 * - `VDI.list_changed_blocks(from, to)`: a base64 bitmap, one bit per 64 KiB block (most
 *   significant bit first), of the blocks whose content differs between the two; both must be on
 *   the same log (`SR_BACKEND_FAILURE_460` otherwise, as the SM answers). A fingerprint per 64 KiB
 *   block is kept with each snapshot whose data is destroyed, so it still answers then.
 * - `VDI.data_destroy(snapshot)`: the snapshot's data goes, its CBT metadata stays; `type` becomes
 *   `cbt_metadata`. Such a VDI cannot be exported (nor be the `base` of an export), nor opened
 *   over NBD.
 * - `VDI.get_nbd_info(vdi)`: one entry per network of purpose `nbd` (TLS) or `insecure_nbd`
 *   (plain) with a PIF on the host: `{ address, port, exportname, cert, subject }`, the export name
 *   carrying the caller's session; empty without such a network.
 *
 * A real SM reports the blocks written since the earlier snapshot; this one reports those whose
 * bytes differ (a subset: a block rewritten with the same bytes is not listed), which gives the
 * same delta.
 */
import { createHash, randomUUID } from 'node:crypto'

import type { MethodContext, MethodSpec } from './methods.js'
import type { PoolModel } from './pool-model.js'
import type { VdiFiles } from './vdi-files.js'
import { XapiFault } from './xapi-fault.js'

/** the granularity of CBT: one bit per 64 KiB */
export const CBT_BLOCK_SIZE = 64 * 1024

/** bytes a CBT log takes on the SR: a bitmap of the disk plus a header */
export function cbtLogBytes(virtualSize: number): number {
  return 4096 + Math.ceil(virtualSize / CBT_BLOCK_SIZE / 8)
}

const ZERO_BLOCK = createHash('sha256').update(Buffer.alloc(CBT_BLOCK_SIZE)).digest('hex')

/** fingerprints of the non-zero 64 KiB blocks of a VDI's content, by block index */
async function fingerprints(files: VdiFiles, uuid: string): Promise<Map<number, string>> {
  const result = new Map<number, string>()
  const blocks = await files.allocatedBlocks(uuid, CBT_BLOCK_SIZE)
  const reader = await files.reader(uuid)
  try {
    const buffer = Buffer.alloc(CBT_BLOCK_SIZE)
    for (const block of blocks) {
      buffer.fill(0)
      await reader.read(buffer, 0, CBT_BLOCK_SIZE, block * CBT_BLOCK_SIZE)
      const digest = createHash('sha256').update(buffer).digest('hex')
      if (digest !== ZERO_BLOCK) result.set(block, digest)
    }
  } finally {
    await reader.close()
  }
  return result
}

/** The CBT state of a pool that is not in its records: the log each VDI is on, kept fingerprints. */
export class CbtLogs {
  /** VDI ref → the id of the CBT log it is on */
  readonly #logs = new Map<string, string>()
  /** VDI ref → fingerprints of a VDI whose data was destroyed */
  readonly #kept = new Map<string, Map<number, string>>()

  enable(vdi: string): void {
    if (!this.#logs.has(vdi)) this.#logs.set(vdi, randomUUID())
  }

  disable(vdi: string): void {
    this.#logs.delete(vdi)
  }

  /** a snapshot of `source` was taken as `copy`: it carries the source's log */
  snapshotTaken(source: string, copy: string): void {
    const log = this.#logs.get(source)
    if (log !== undefined) this.#logs.set(copy, log)
  }

  /** the disk's log is broken (it moved to another SR): a new one starts */
  restart(vdi: string): void {
    if (this.#logs.has(vdi)) this.#logs.set(vdi, randomUUID())
  }

  logOf(vdi: string): string | undefined {
    return this.#logs.get(vdi)
  }

  keep(vdi: string, prints: Map<number, string>): void {
    this.#kept.set(vdi, prints)
  }

  kept(vdi: string): Map<number, string> | undefined {
    return this.#kept.get(vdi)
  }
}

const logsByModel = new WeakMap<PoolModel, CbtLogs>()

/** the CBT state of a pool */
export function cbtOf(model: PoolModel): CbtLogs {
  let logs = logsByModel.get(model)
  if (logs === undefined) {
    logs = new CbtLogs()
    logsByModel.set(model, logs)
  }
  return logs
}

const ref = (value: unknown, name = 'self'): string => {
  if (typeof value !== 'string') throw new XapiFault('FIELD_TYPE_ERROR', [name])
  return value
}

/** the fingerprints of a VDI: those kept if its data was destroyed, else read from its file */
async function printsOf(model: PoolModel, vdi: string): Promise<Map<number, string>> {
  const kept = cbtOf(model).kept(vdi)
  if (kept !== undefined) return kept
  return fingerprints(model.files, String(model.store.get('VDI', vdi).uuid))
}

/** the bitmap `list_changed_blocks` answers: bit i (MSB first) for block i */
export function changedBitmap(virtualSize: number, changed: Iterable<number>): Buffer {
  const bitmap = Buffer.alloc(Math.ceil(Math.ceil(virtualSize / CBT_BLOCK_SIZE) / 8))
  for (const block of changed) bitmap[block >> 3]! |= 0x80 >> (block & 7)
  return bitmap
}

async function listChangedBlocks(ctx: MethodContext, from: string, to: string): Promise<string> {
  const { store } = ctx.model
  const fromRecord = store.get('VDI', from)
  const toRecord = store.get('VDI', to)
  const logs = cbtOf(ctx.model)
  for (const [vdi, record] of [[from, fromRecord], [to, toRecord]] as const) {
    if (record.cbt_enabled !== true) throw new XapiFault('VDI_NO_CBT_METADATA', [vdi])
  }
  const log = logs.logOf(from)
  if (log === undefined || log !== logs.logOf(to)) {
    throw new XapiFault('SR_BACKEND_FAILURE_460', ['', 'Failed to calculate changed blocks for given VDIs. [opterr=Source and target VDI are unrelated]', ''])
  }
  const [before, after] = await Promise.all([printsOf(ctx.model, from), printsOf(ctx.model, to)])
  const changed = new Set<number>()
  for (const [block, print] of after) if (before.get(block) !== print) changed.add(block)
  for (const block of before.keys()) if (!after.has(block)) changed.add(block)
  return changedBitmap(Number(toRecord.virtual_size), changed).toString('base64')
}

async function dataDestroy(ctx: MethodContext, vdi: string): Promise<void> {
  const { model } = ctx
  const record = model.store.get('VDI', vdi)
  if (record.type === 'cbt_metadata') return
  if (record.is_a_snapshot !== true) throw new XapiFault('VDI_NOT_A_SNAPSHOT', [vdi])
  if (record.cbt_enabled !== true) throw new XapiFault('VDI_NO_CBT_METADATA', [vdi])
  model.assertReleased(vdi)
  for (const vbd of record.VBDs as string[]) {
    if (model.store.get('VBD', vbd).currently_attached === true) throw new XapiFault('VDI_IN_USE', [vdi, 'data_destroy'])
  }
  const uuid = String(record.uuid)
  cbtOf(model).keep(vdi, await fingerprints(model.files, uuid))
  model.files.remove(uuid)
  model.store.update('VDI', vdi, { type: 'cbt_metadata', physical_utilisation: cbtLogBytes(Number(record.virtual_size)) })
}

/** the NBD endpoint of the host, as `get_nbd_info` announces it */
export interface NbdEndpoint {
  readonly address: string
  readonly port: number
  /** PEM of the host's certificate (generated on first use) */
  cert(): Promise<string>
  readonly subject: string
}

async function nbdInfo(ctx: MethodContext, vdi: string): Promise<unknown[]> {
  const { store, infra } = ctx.model
  const record = store.get('VDI', vdi)
  const endpoint = ctx.nbd
  if (endpoint === undefined) return []
  const hostPifs = new Set(store.get('host', infra.host).PIFs as string[])
  const entries: unknown[] = []
  for (const network of store.refs('network')) {
    const purposes = (store.get('network', network).purpose as string[] | undefined) ?? []
    const reachable = (store.get('network', network).PIFs as string[]).some(pif => hostPifs.has(pif))
    if (!reachable) continue
    const secure = purposes.includes('nbd')
    if (!secure && !purposes.includes('insecure_nbd')) continue
    entries.push({
      address: endpoint.address,
      port: endpoint.port,
      exportname: `/${String(record.uuid)}?session_id=${ctx.session ?? ''}`,
      cert: secure ? await endpoint.cert() : '',
      subject: secure ? endpoint.subject : '',
    })
  }
  return entries
}

/** the CBT and NBD methods, on the profiles that have them */
export const CBT_METHODS: Readonly<Record<string, MethodSpec>> = {
  'VDI.enable_cbt': {
    run(ctx, [vdi]) {
      const record = ctx.model.store.get('VDI', ref(vdi))
      if (record.type === 'cbt_metadata') throw new XapiFault('VDI_INCOMPATIBLE_TYPE', [ref(vdi), 'cbt_metadata'])
      cbtOf(ctx.model).enable(ref(vdi))
      ctx.model.store.update('VDI', ref(vdi), { cbt_enabled: true })
    },
  },
  'VDI.disable_cbt': {
    run(ctx, [vdi]) {
      ctx.model.store.get('VDI', ref(vdi))
      cbtOf(ctx.model).disable(ref(vdi))
      ctx.model.store.update('VDI', ref(vdi), { cbt_enabled: false })
    },
  },
  'VDI.list_changed_blocks': { run: (ctx, [from, to]) => listChangedBlocks(ctx, ref(from, 'vdi_from'), ref(to, 'vdi_to')) },
  'VDI.data_destroy': { run: (ctx, [vdi]) => dataDestroy(ctx, ref(vdi)) },
  'VDI.get_nbd_info': { run: (ctx, [vdi]) => nbdInfo(ctx, ref(vdi)) },
}

/**
 * A disk moved to another SR (storage migration): its record now names that SR, and its CBT log
 * starts anew, so no earlier snapshot of it can be compared with a later one.
 */
export function migrateVdi(model: PoolModel, vdi: string, sr: string): void {
  const record = model.store.get('VDI', vdi)
  model.store.get('SR', sr)
  const from = String(record.SR)
  model.store.edit<string[]>('SR', from, 'VDIs', refs => refs.filter(r => r !== vdi))
  model.store.edit<string[]>('SR', sr, 'VDIs', refs => [...refs, vdi])
  model.store.update('VDI', vdi, { SR: sr })
  cbtOf(model).restart(vdi)
}

/** bytes a VDI holds on its SR: its allocated data, or its CBT log once its data was destroyed */
export async function bytesOnSr(model: PoolModel, vdi: string): Promise<number> {
  const record = model.store.get('VDI', vdi)
  if (record.type === 'cbt_metadata') return cbtLogBytes(Number(record.virtual_size))
  let bytes = 0
  for (const [start, end] of await model.files.extents(String(record.uuid))) bytes += end - start
  return bytes
}
