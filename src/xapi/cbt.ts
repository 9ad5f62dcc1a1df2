/**
 * Changed block tracking and NBD through XAPI (XenServer 7.3 / XCP-ng 7.4 on):
 * `VDI.enable_cbt`, `VDI.list_changed_blocks` (a base64 bitmap, one bit per 64 KiB, most
 * significant bit first), `VDI.data_destroy` (a snapshot keeps only its CBT metadata: `type`
 * becomes `cbt_metadata`) and `VDI.get_nbd_info` (empty unless a network has the purpose `nbd` or
 * `insecure_nbd`).
 */
import type { NbdExportInfo } from '../nbd/index.js'
import type { Ref, XapiClient } from './client.js'
import { DEFAULT_BLOCK_SIZE } from '../repository/vhd-lib.js'

/** the granularity of `list_changed_blocks` */
export const CBT_BLOCK_SIZE = 64 * 1024

/** the `type` of a snapshot VDI whose data was destroyed */
export const CBT_METADATA = 'cbt_metadata'

export async function enableCbt(xapi: XapiClient, vdi: Ref): Promise<void> {
  await xapi.call('VDI.enable_cbt', vdi)
}

/** the 64 KiB blocks that differ between `from` and `to`, as XAPI's bitmap says */
export async function listChangedBlocks(xapi: XapiClient, from: Ref, to: Ref): Promise<Buffer> {
  const answer = await xapi.call<unknown>('VDI.list_changed_blocks', from, to)
  if (typeof answer !== 'string') throw new TypeError(`VDI.list_changed_blocks answered ${typeof answer}, not a base64 string`)
  return Buffer.from(answer, 'base64')
}

/**
 * The VHD blocks (2 MiB) holding at least one changed 64 KiB block, ascending. A bitmap too
 * short for the disk is refused: a delta built on it could miss changes.
 */
export function changedVhdBlocks(bitmap: Buffer, virtualSize: number, blockSize: number = DEFAULT_BLOCK_SIZE): number[] {
  const cbtBlocks = Math.ceil(virtualSize / CBT_BLOCK_SIZE)
  if (bitmap.length < Math.ceil(cbtBlocks / 8)) {
    throw new RangeError(`the changed-block bitmap covers ${bitmap.length * 8} blocks of 64 KiB, the disk has ${cbtBlocks}`)
  }
  const perVhdBlock = blockSize / CBT_BLOCK_SIZE
  const blocks = new Set<number>()
  for (let byte = 0; byte < bitmap.length; byte++) {
    const bits = bitmap[byte]!
    if (bits === 0) continue
    for (let bit = 0; bit < 8; bit++) {
      const index = byte * 8 + bit
      if (index < cbtBlocks && (bits & (0x80 >> bit)) !== 0) blocks.add(Math.floor(index / perVhdBlock))
    }
  }
  return [...blocks].sort((a, b) => a - b)
}

export async function dataDestroy(xapi: XapiClient, vdi: Ref): Promise<void> {
  await xapi.call('VDI.data_destroy', vdi)
}

function isInfo(value: unknown): value is NbdExportInfo {
  const entry = value as Record<string, unknown>
  return typeof value === 'object' && value !== null && typeof entry.address === 'string' && typeof entry.exportname === 'string' && (typeof entry.port === 'number' || typeof entry.port === 'string')
}

/** where the disk can be read over NBD; empty when no network of the pool offers NBD */
export async function nbdInfo(xapi: XapiClient, vdi: Ref): Promise<NbdExportInfo[]> {
  const answer = await xapi.call<unknown>('VDI.get_nbd_info', vdi)
  if (!Array.isArray(answer)) throw new TypeError('VDI.get_nbd_info did not answer a list')
  return answer.filter(isInfo).map(entry => ({
    address: entry.address,
    port: Number(entry.port),
    exportname: entry.exportname,
    ...(typeof entry.cert === 'string' ? { cert: entry.cert } : {}),
    ...(typeof entry.subject === 'string' ? { subject: entry.subject } : {}),
  }))
}
