/**
 * Restore points written before block checksums recorded one sha256 of the whole VHD
 * (`continuousDelta.checksums`): a VHD file hashed byte for byte, a VHD directory through its
 * canonical serialization (canonical-vhd.ts). They are still checked, coarsely: the VHD is read
 * whole, and a mismatch says the VHD is damaged without naming its blocks.
 */
import { createHash } from 'node:crypto'
import { hashCanonicalVhd } from '../canonical-vhd.js'
import type { VhdChecksum } from '../metadata.js'
import type { RemoteHandler } from '../remote-handler.js'
import { isVhdAlias } from '../vhd-lib.js'

/** sha256 and length as recorded at transfer time by those restore points */
export async function legacyChecksumOfVhd(handler: RemoteHandler, path: string, signal?: AbortSignal): Promise<VhdChecksum> {
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

/** why the VHD differs from its recorded whole-VHD checksum, or undefined when it matches */
export async function legacyMismatch(handler: RemoteHandler, path: string, recorded: VhdChecksum, signal?: AbortSignal): Promise<string | undefined> {
  const actual = await legacyChecksumOfVhd(handler, path, signal)
  if (actual.sha256 === recorded.sha256 && actual.size === recorded.size) return undefined
  return `its sha256 ${actual.sha256} (${actual.size} bytes) differs from ${recorded.sha256} (${recorded.size} bytes) recorded when it was transferred`
}
