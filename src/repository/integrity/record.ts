/**
 * Records a VHD's block-checksum list digest in the metadata of every restore point that uses the
 * VHD (`continuousDelta.blockChecksums`): what a merge does once it rewrote a VHD.
 */
import { isUuid, normalizePath, relativeToVmDir, resolveFromVmDir } from '../layout.js'
import { readMetadata, updateMetadata } from '../metadata.js'
import type { RemoteHandler } from '../remote-handler.js'
import { listMetadataFiles } from '../restore-points.js'
import type { BlockChecksums } from './block-checksums.js'
import { vmOfPath } from './trusted.js'

/**
 * Every restore point whose `vhds` names `vhdPath` records `list`'s digest for it; without a list,
 * the entry is removed. Idempotent; a VHD outside a VM folder, or metadata that cannot be read,
 * is left alone.
 */
export async function recordBlockChecksums(handler: RemoteHandler, vhdPath: string, list: BlockChecksums | undefined): Promise<void> {
  const path = normalizePath(vhdPath)
  let vm: string
  try {
    vm = vmOfPath(path)
  } catch {
    return
  }
  if (!isUuid(vm)) return
  const relative = relativeToVmDir(vm, path)
  for (const file of await listMetadataFiles(handler, vm)) {
    let uses: boolean
    try {
      uses = Object.values((await readMetadata(handler, file)).vhds).some(vhd => resolveFromVmDir(vm, vhd) === path)
    } catch {
      continue
    }
    if (!uses) continue
    await updateMetadata(handler, file, metadata => {
      const extras = metadata.continuousDelta
      if (extras === undefined) return undefined
      const digests = { ...(extras.blockChecksums ?? {}) }
      if (list === undefined) {
        if (!(relative in digests)) return undefined
        delete digests[relative]
      } else {
        if (digests[relative] === list.digest) return undefined
        digests[relative] = list.digest
      }
      return { ...metadata, continuousDelta: { ...extras, blockChecksums: digests } }
    })
  }
}
