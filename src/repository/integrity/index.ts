/**
 * Block checksums: a sha256 of every data block and structure of each VHD, computed while the VHD
 * streams in, kept in a sidecar beside it and identified by a digest recorded in the restore
 * point's metadata; checked by restores, `verify`, the base check before a delta and merges.
 * Format: docs/remote-format.md.
 */
export { BlockChecksums, BlockChecksumsBuilder, BlockChecksumsFormatError, hashStructures, sha256, type Structures } from './block-checksums.js'
export { isSidecarName, readSidecar, removeSidecar, removeSidecarTemps, sidecarPath, vhdOfSidecar, writeSidecar, SIDECAR_SUFFIX, type SidecarRead } from './sidecar.js'
export { computeBlockChecksums, parentNameOf, readRawStructures, readStructures, type RawStructures } from './structure.js'
export {
  allocatedBlocks,
  blockChecksumsEntry,
  checksumsOf,
  readRecordedIntegrity,
  recordedIntegrityOf,
  vmOfPath,
  type ChecksumsOptions,
  type RecordedIntegrity,
  type VhdIntegrity,
} from './trusted.js'
export { checkBlocks, selectBlocks, type BlockDamage, type BlockSelection, type BlocksCheck } from './check.js'
export { legacyChecksumOfVhd, legacyMismatch } from './legacy.js'
export { recordBlockChecksums } from './record.js'
