/**
 * What the simulator's own tests use to check its output independently: VHD files read back with
 * vhd-lib (through an @xen-orchestra/fs handler), file hashes, exports downloaded to files.
 */
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { open, truncate } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import type { Xapi } from '../helpers/pool.js'

const require = createRequire(import.meta.url)

interface Disposable<T> {
  value: T
  dispose(): Promise<void> | void
}

interface VhdFileView {
  readonly footer: { diskType: number; currentSize: number; uuid: Buffer }
  readonly header: { blockSize: number; maxTableEntries: number; parentUuid: Buffer }
  readBlockAllocationTable(): Promise<void>
  containsBlock(id: number): boolean
  readBlock(id: number): Promise<{ data: Buffer; bitmap: Buffer }>
}

const { getSyncedHandler } = require('@xen-orchestra/fs') as {
  getSyncedHandler(remote: { url: string }): Promise<Disposable<unknown>>
}
const { openVhd } = require('vhd-lib') as {
  openVhd(handler: unknown, path: string): Promise<Disposable<VhdFileView>>
}

export interface VhdSummary {
  diskType: number
  uuid: string
  parentUuid: string
  size: number
  blockSize: number
  /** Ids of the blocks present, ascending. */
  blocks: number[]
}

const formatUuid = (bytes: Buffer): string => {
  const hex = bytes.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * Opens a VHD file with vhd-lib and calls `onBlock` for each block present. With `rawPath`, the
 * blocks are written into that raw file (sized to the VHD's virtual size), i.e. the VHD is applied.
 */
export async function readVhd(vhdPath: string, rawPath?: string): Promise<VhdSummary> {
  const handler = await getSyncedHandler({ url: `file://${dirname(vhdPath)}` })
  try {
    const vhd = await openVhd(handler.value, basename(vhdPath))
    try {
      const { footer, header } = vhd.value
      await vhd.value.readBlockAllocationTable()
      const blocks: number[] = []
      const raw = rawPath === undefined ? undefined : await open(rawPath, 'r+')
      try {
        if (raw !== undefined) await raw.truncate(footer.currentSize)
        for (let id = 0; id < header.maxTableEntries; ++id) {
          if (!vhd.value.containsBlock(id)) continue
          blocks.push(id)
          if (raw !== undefined) {
            const { data } = await vhd.value.readBlock(id)
            const offset = id * header.blockSize
            const length = Math.min(data.length, footer.currentSize - offset)
            await raw.write(data, 0, length, offset)
          }
        }
      } finally {
        await raw?.close()
      }
      return {
        diskType: footer.diskType,
        uuid: formatUuid(footer.uuid),
        parentUuid: formatUuid(header.parentUuid),
        size: footer.currentSize,
        blockSize: header.blockSize,
        blocks,
      }
    } finally {
      await vhd.dispose()
    }
  } finally {
    await handler.dispose()
  }
}

/** Creates an empty (sparse) raw file of `size` bytes. */
export async function createRaw(path: string, size: number): Promise<void> {
  await (await open(path, 'w')).close()
  await truncate(path, size)
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(path), hash)
  return hash.digest('hex')
}

/** Downloads `GET /export_raw_vdi/` through the client into a file; resolves once its task succeeded. */
export async function downloadExport(xapi: Xapi, query: Record<string, string>, path: string): Promise<void> {
  const response = (await xapi.getResource('/export_raw_vdi/', { query })) as unknown as { body: Readable; task: Promise<unknown> }
  await pipeline(response.body, createWriteStream(path))
  await response.task
}

/** Uploads a file with `PUT /import_raw_vdi/` through the client; resolves with the task result. */
export async function uploadImport(xapi: Xapi, query: Record<string, string>, path: string): Promise<unknown> {
  const file = await open(path, 'r')
  const { size } = await file.stat()
  await file.close()
  const body = Object.assign(createReadStream(path), { length: size })
  return xapi.putResource(body, '/import_raw_vdi/', { query })
}

/** Every field `VM.create` requires, set as a fresh HVM VM would have them, overlaid with `fields`. */
export function vmCreateArgs(fields: Record<string, unknown> = {}): Record<string, unknown> {
  const GiB = 1024 ** 3
  return {
    name_label: '',
    name_description: '',
    user_version: 1,
    is_a_template: false,
    affinity: 'OpaqueRef:NULL',
    memory_static_max: GiB,
    memory_dynamic_max: GiB,
    memory_dynamic_min: GiB,
    memory_static_min: GiB,
    VCPUs_params: {},
    VCPUs_max: 1,
    VCPUs_at_startup: 1,
    actions_after_shutdown: 'destroy',
    actions_after_reboot: 'restart',
    actions_after_crash: 'restart',
    PV_bootloader: '',
    PV_kernel: '',
    PV_ramdisk: '',
    PV_args: '',
    PV_bootloader_args: '',
    PV_legacy_args: '',
    HVM_boot_policy: 'BIOS order',
    HVM_boot_params: { order: 'cd' },
    platform: {},
    PCI_bus: '',
    other_config: {},
    recommendations: '',
    ...fields,
  }
}

/** What `VBD.create` requires for a disk drive, overlaid with `fields`. */
export function vbdCreateArgs(fields: Record<string, unknown>): Record<string, unknown> {
  return { userdevice: 'autodetect', bootable: false, mode: 'RW', type: 'Disk', empty: false, unpluggable: true, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {}, ...fields }
}

/** What `VDI.create` requires, overlaid with `fields`. */
export function vdiCreateArgs(fields: Record<string, unknown>): Record<string, unknown> {
  return { name_label: '', name_description: '', type: 'user', sharable: false, read_only: false, other_config: {}, ...fields }
}

/** What `VIF.create` requires, overlaid with `fields`. */
export function vifCreateArgs(fields: Record<string, unknown>): Record<string, unknown> {
  return { device: '0', MAC: '', MTU: 1500, other_config: {}, qos_algorithm_type: '', qos_algorithm_params: {}, ...fields }
}
