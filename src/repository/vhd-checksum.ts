/**
 * The sha256 recorded for a VHD when it was transferred (`continuousDelta.checksums` of the
 * restore points' metadata), and whether the VHD on the remote still has it: a VHD file is hashed
 * byte for byte, a VHD directory through its canonical serialization, as the writer recorded them.
 * Reading costs the size of the VHD: for a delta, the data that changed.
 */
import { createHash } from 'node:crypto'
import { hashCanonicalVhd } from './canonical-vhd.js'
import { normalizePath, resolveFromVmDir } from './layout.js'
import { readMetadata, type VhdChecksum } from './metadata.js'
import type { RemoteHandler } from './remote-handler.js'
import { listMetadataFiles } from './restore-points.js'
import { isVhdAlias } from './vhd-lib.js'

/** sha256 as recorded at transfer time: a file's bytes, a directory's canonical stream */
export async function checksumOfVhd(handler: RemoteHandler, path: string, signal?: AbortSignal): Promise<VhdChecksum> {
  if (isVhdAlias(path)) return hashCanonicalVhd(handler, path, signal)
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of await handler.createReadStream(path)) {
    signal?.throwIfAborted()
    hash.update(chunk as Buffer)
    size += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), size }
}

/**
 * The checksum the newest restore point naming `vhdPath` recorded for it, or `undefined` when
 * none did (a full rewritten by a merge has none). Unreadable metadata files are skipped: they
 * are verify's to report.
 */
export async function recordedChecksum(handler: RemoteHandler, vmUuid: string, vhdPath: string): Promise<VhdChecksum | undefined> {
  const wanted = normalizePath(vhdPath)
  const files = await listMetadataFiles(handler, vmUuid)
  for (const file of files.reverse()) {
    let found: VhdChecksum | undefined
    try {
      const checksums = (await readMetadata(handler, file)).continuousDelta?.checksums ?? {}
      found = Object.entries(checksums).find(([relative]) => resolveFromVmDir(vmUuid, relative) === wanted)?.[1]
    } catch {
      continue
    }
    if (found !== undefined) return found
  }
  return undefined
}

export type ChecksumCheck =
  | { readonly status: 'unrecorded' }
  | { readonly status: 'match'; readonly recorded: VhdChecksum }
  | { readonly status: 'mismatch'; readonly recorded: VhdChecksum; readonly actual: VhdChecksum }

/** compares a VHD with the checksum recorded for it at transfer time, when one was */
export async function checkRecordedChecksum(handler: RemoteHandler, vmUuid: string, vhdPath: string, signal?: AbortSignal): Promise<ChecksumCheck> {
  const recorded = await recordedChecksum(handler, vmUuid, vhdPath)
  if (recorded === undefined) return { status: 'unrecorded' }
  const actual = await checksumOfVhd(handler, vhdPath, signal)
  return actual.sha256 === recorded.sha256 && actual.size === recorded.size ? { status: 'match', recorded } : { status: 'mismatch', recorded, actual }
}
