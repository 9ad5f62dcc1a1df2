/**
 * Which block checksums apply to a VHD on the remote, and whether they can be trusted:
 *
 * 1. its sidecar, when it parses (its own digest matches its content) and its digest is the one the
 *    restore point's metadata records (`continuousDelta.blockChecksums`), or none is recorded;
 * 2. otherwise, when a digest is recorded, the list recomputed by reading the VHD: trusted when it
 *    has the recorded digest (a sidecar Xen Orchestra or anyone deleted costs this read, never a
 *    guarantee: `repair` writes the sidecar back); when it has another digest the VHD is damaged;
 * 3. the VHD's footer, header, BAT and locators are compared with the list's. When they differ and
 *    the VHD's recorded parent is gone while the parent's sidecar is still there, the VHD is
 *    recognised as rewritten by a merge that folded its ancestors into it (Xen Orchestra's merge
 *    writes child ∪ (parent ∖ child) under the child's name; ours records the merged list itself,
 *    merge/integrity.ts): the merged list is the child's blocks over the ancestors' blocks, accepted when the
 *    VHD's allocated blocks are exactly that union; its structures are then the VHD's own (not
 *    checked: nothing recorded them), its blocks are checked as every other; a writer (`repair`)
 *    records the rebuilt list's digest in the metadata, then writes it as the VHD's sidecar;
 * 4. restore points written before block checksums recorded a sha256 of the whole VHD
 *    (`continuousDelta.checksums`): `legacy`, checked coarsely by reading the whole VHD.
 */
import { normalizePath, relativeToVmDir, resolveFromVmDir, resolveSibling } from '../layout.js'
import { readMetadata, type BackupMetadata, type VhdChecksum } from '../metadata.js'
import { exists } from '../remote-files.js'
import type { RemoteHandler } from '../remote-handler.js'
import { listMetadataFiles } from '../restore-points.js'
import { Constants, isVhdAlias } from '../vhd-lib.js'
import type { BlockChecksums } from './block-checksums.js'
import { recordBlockChecksums } from './record.js'
import { readSidecar, writeSidecar } from './sidecar.js'
import { computeBlockChecksums, parentNameOf, readStructures, type RawStructures } from './structure.js'

const { BLOCK_UNUSED } = Constants

/** what the restore points' metadata records about the VHDs of a VM */
export interface RecordedIntegrity {
  /** VHD path (from the remote root) → digest of its block-checksum list */
  readonly digests: ReadonlyMap<string, string>
  /** VHD path → whole-VHD sha256 recorded by restore points written before block checksums */
  readonly legacy: ReadonlyMap<string, VhdChecksum>
  /** VHD path → why it is damaged, as a refused merge recorded it (`continuousDelta.damaged`) */
  readonly damaged?: ReadonlyMap<string, string>
}

/** the VM uuid of a path `xo-vm-backups/<vm>/…` */
export function vmOfPath(path: string): string {
  const match = /^xo-vm-backups\/([^/]+)\//.exec(normalizePath(path))
  if (match === null) throw new Error(`not a path inside a VM folder: ${path}`)
  return match[1]!
}

export function recordedIntegrityOf(vmUuid: string, metadata: Iterable<BackupMetadata>): RecordedIntegrity {
  const digests = new Map<string, string>()
  const legacy = new Map<string, VhdChecksum>()
  const damaged = new Map<string, string>()
  for (const m of metadata) {
    for (const record of m.continuousDelta?.damaged ?? []) {
      const blocks = record.blocks === undefined ? '' : ` (block${record.blocks.length === 1 ? '' : 's'} ${record.blocks.slice(0, 8).join(', ')}${record.blocks.length > 8 ? ', …' : ''})`
      damaged.set(resolveFromVmDir(vmUuid, record.vhd), `${record.reason}${blocks}`)
    }
    for (const [relative, digest] of Object.entries(m.continuousDelta?.blockChecksums ?? {})) {
      digests.set(resolveFromVmDir(vmUuid, relative), digest)
    }
    for (const [relative, sum] of Object.entries(m.continuousDelta?.checksums ?? {})) {
      legacy.set(resolveFromVmDir(vmUuid, relative), sum)
    }
  }
  return { digests, legacy, damaged }
}

/** reads every metadata file of the VM; unreadable ones are skipped (they are verify's to report) */
export async function readRecordedIntegrity(handler: RemoteHandler, vmUuid: string): Promise<RecordedIntegrity> {
  const metadata: BackupMetadata[] = []
  for (const file of await listMetadataFiles(handler, vmUuid)) {
    try {
      metadata.push(await readMetadata(handler, file))
    } catch {
      continue
    }
  }
  return recordedIntegrityOf(vmUuid, metadata)
}

/** the metadata entry recording `list` for `vhdPath` */
export function blockChecksumsEntry(vmUuid: string, vhdPath: string, list: BlockChecksums): Record<string, string> {
  return { [relativeToVmDir(vmUuid, vhdPath)]: list.digest }
}

export type VhdIntegrity =
  | {
      readonly status: 'listed'
      readonly list: BlockChecksums
      /** where the list came from */
      readonly source: 'sidecar' | 'recomputed' | 'merged'
      /** for `recomputed` and `merged`, what happened */
      readonly note?: string
    }
  | {
      readonly status: 'damaged'
      readonly reason: string
      /** the recorded list, when the blocks can still be checked against it (structures damaged) */
      readonly list?: BlockChecksums
    }
  | { readonly status: 'legacy'; readonly recorded: VhdChecksum }
  | { readonly status: 'unrecorded'; readonly note?: string }

export interface ChecksumsOptions {
  /** when no trusted sidecar exists: read the VHD to recompute its list (default true) */
  readonly recompute?: boolean
  /** write the sidecar back when it was recomputed or rebuilt after a merge (writers only) */
  readonly repair?: boolean
  readonly signal?: AbortSignal
  /** each block read when recomputing */
  onBlock?(id: number, bytes: number): void
}

/** the block ids a BAT as stored allocates (VHD file: sector entries; VHD directory: a bitmap) */
export function allocatedBlocks(path: string, raw: RawStructures): number[] {
  const ids: number[] = []
  const entries = raw.parsedHeader.maxTableEntries
  if (isVhdAlias(path)) {
    for (let id = 0; id < entries; id++) if (((raw.bat[id >> 3]! << (id & 7)) & 0x80) !== 0) ids.push(id)
  } else {
    for (let id = 0; id < entries; id++) if (raw.bat.readUInt32BE(id * 4) !== BLOCK_UNUSED) ids.push(id)
  }
  return ids
}

/** the list of a VHD whose gone ancestors (recorded parent missing, its sidecar present) a merge folded into it */
async function mergedList(
  handler: RemoteHandler,
  path: string,
  list: BlockChecksums,
  raw: RawStructures,
  structures: BlockChecksums['structures'],
  recorded: RecordedIntegrity,
): Promise<BlockChecksums | undefined> {
  const ancestors: BlockChecksums[] = []
  let current = path
  let parent = list.parent
  const actual = allocatedBlocks(path, raw)
  const same = (candidate: BlockChecksums) => {
    const ids = candidate.blockIds()
    return ids.length === actual.length && ids.every((id, i) => id === actual[i])
  }
  while (parent !== '') {
    const parentPath = resolveSibling(current, parent)
    if (await exists(handler, parentPath)) break
    const read = await readSidecar(handler, parentPath)
    if (read.status !== 'ok') break
    const digest = recorded.digests.get(parentPath)
    if (digest !== undefined && digest !== read.list.digest) break
    ancestors.push(read.list)
    const merged = list.overlayOnto(ancestors, { structures, parent: parentNameOf(raw), maxTableEntries: raw.parsedHeader.maxTableEntries })
    if (same(merged)) return merged
    current = parentPath
    parent = read.list.parent
  }
  return undefined
}

/** the block checksums that apply to the VHD at `path`, and whether they can be trusted (see the module comment) */
export async function checksumsOf(handler: RemoteHandler, path: string, recorded: RecordedIntegrity, opts: ChecksumsOptions = {}): Promise<VhdIntegrity> {
  path = normalizePath(path)
  const digest = recorded.digests.get(path)
  const sidecar = await readSidecar(handler, path)
  let list: BlockChecksums | undefined
  let note: string | undefined
  if (sidecar.status === 'ok' && (digest === undefined || sidecar.list.digest === digest)) {
    list = sidecar.list
  } else if (sidecar.status === 'ok') {
    note = `its checksum sidecar has digest ${sidecar.list.digest}, the restore point recorded ${digest}`
  } else if (sidecar.status === 'damaged') {
    note = `its checksum sidecar is damaged (${sidecar.reason})`
  } else {
    note = 'its checksum sidecar is missing'
  }

  let raw: RawStructures
  let structures: BlockChecksums['structures']
  try {
    ;({ raw, structures } = await readStructures(handler, path))
  } catch (error) {
    return { status: 'damaged', reason: `its footer, header or block allocation table cannot be read: ${(error as Error).message}`, ...(list === undefined ? {} : { list }) }
  }

  if (list !== undefined) {
    const differ = list.structureMismatches(structures)
    if (differ.length === 0) return { status: 'listed', list, source: 'sidecar' }
    const merged = await mergedList(handler, path, list, raw, structures, recorded)
    if (merged !== undefined) {
      if (opts.repair === true) {
        // the metadata first: a crash before the sidecar is written costs a recomputation that
        // finds the digest recorded, never a false "damaged"
        await recordBlockChecksums(handler, path, merged)
        await writeSidecar(handler, path, merged)
      }
      return { status: 'listed', list: merged, source: 'merged', note: 'rewritten by a merge that folded its gone ancestors into it; checksums rebuilt from their sidecars' }
    }
    return { status: 'damaged', reason: `its ${differ.join(', ')} differ${differ.length === 1 ? 's' : ''} from the checksums recorded when it was written`, list }
  }

  if (digest === undefined) {
    const legacy = recorded.legacy.get(path)
    if (legacy !== undefined) return { status: 'legacy', recorded: legacy }
    return { status: 'unrecorded', ...(sidecar.status === 'missing' ? {} : { note }) }
  }
  if (opts.recompute === false) {
    return { status: 'unrecorded', note: `${note}; its checksums were not recomputed` }
  }
  const recomputed = await computeBlockChecksums(handler, path, {
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(opts.onBlock === undefined ? {} : { onBlock: opts.onBlock }),
  })
  if (recomputed.digest === digest) {
    if (opts.repair === true) await writeSidecar(handler, path, recomputed)
    return { status: 'listed', list: recomputed, source: 'recomputed', note: `${note}: recomputed from the VHD, it has the digest recorded` }
  }
  return {
    status: 'damaged',
    reason: `${note}, and the VHD read in full no longer has the checksums recorded (digest ${recomputed.digest}, recorded ${digest}): the damaged blocks cannot be named`,
  }
}
