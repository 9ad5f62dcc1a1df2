/**
 * The structures of a VHD as stored on the remote (footer, header, block allocation table, parent
 * locator data) read without its data blocks, and the full block-checksum list of a VHD computed
 * by reading it (what a missing sidecar costs).
 */
import { isVhdAlias, Constants, computeBatSize, fuFooter, fuHeader, openVhd, resolveVhdAlias, type VhdHeader } from '../vhd-lib.js'
import { normalizePath } from '../layout.js'
import type { RemoteHandler } from '../remote-handler.js'
import { BlockChecksumsBuilder, hashStructures, type BlockChecksums, type Structures } from './block-checksums.js'

const { DISK_TYPES, FOOTER_SIZE, HEADER_SIZE, PARENT_LOCATOR_ENTRIES, PLATFORMS } = Constants

export interface RawStructures {
  readonly footer: Buffer
  readonly header: Buffer
  readonly bat: Buffer
  readonly locators: readonly (Buffer | undefined)[]
  /** the header as parsed (not checked) */
  readonly parsedHeader: VhdHeader
  readonly diskType: number
}

async function readAt(handler: RemoteHandler, path: string, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length)
  const { bytesRead } = await handler.read(path, buffer, position)
  if (bytesRead !== length) throw new Error(`${path}: ${bytesRead} of ${length} bytes at ${position} (truncated)`)
  return buffer
}

/** footer, header, BAT and locator data of the VHD (file or alias) at `path`, as stored */
export async function readRawStructures(handler: RemoteHandler, path: string): Promise<RawStructures> {
  if (isVhdAlias(path)) {
    const data = normalizePath(await resolveVhdAlias(handler, path))
    const footer = await handler.readFile(`${data}/footer`)
    const header = await handler.readFile(`${data}/header`)
    const bat = await handler.readFile(`${data}/bat`)
    const parsedHeader = fuHeader.unpack(header)
    const locators: (Buffer | undefined)[] = []
    for (let i = 0; i < PARENT_LOCATOR_ENTRIES; i++) {
      const entry = parsedHeader.parentLocatorEntry[i]!
      locators.push(entry.platformCode === PLATFORMS.NONE ? undefined : await handler.readFile(`${data}/parentLocatorEntry${i}`))
    }
    return { footer, header, bat, locators, parsedHeader, diskType: fuFooter.unpack(footer).diskType }
  }
  const footer = await readAt(handler, path, 0, FOOTER_SIZE)
  const parsedFooter = fuFooter.unpack(footer)
  const header = await readAt(handler, path, Number(parsedFooter.dataOffset), HEADER_SIZE)
  const parsedHeader = fuHeader.unpack(header)
  const bat = await readAt(handler, path, Number(parsedHeader.tableOffset), computeBatSize(parsedHeader.maxTableEntries))
  const locators: (Buffer | undefined)[] = []
  for (let i = 0; i < PARENT_LOCATOR_ENTRIES; i++) {
    const entry = parsedHeader.parentLocatorEntry[i]!
    locators.push(
      entry.platformCode === PLATFORMS.NONE || entry.platformDataLength === 0
        ? undefined
        : await readAt(handler, path, Number(entry.platformDataOffset), entry.platformDataLength),
    )
  }
  return { footer, header, bat, locators, parsedHeader, diskType: parsedFooter.diskType }
}

/** sha256 of each structure of the VHD at `path`, as stored: costs its footer, header, BAT and locators */
export async function readStructures(handler: RemoteHandler, path: string): Promise<{ structures: Structures; raw: RawStructures }> {
  const raw = await readRawStructures(handler, path)
  return { structures: hashStructures(raw), raw }
}

/** the parent name a list records for a VHD: its header's, for a differencing VHD */
export function parentNameOf(raw: RawStructures): string {
  return raw.diskType === DISK_TYPES.DIFFERENCING ? raw.parsedHeader.parentUnicodeName : ''
}

/**
 * The block-checksum list of the VHD at `path`, computed by reading every block of it (the cost
 * of the VHD). `onBlock` sees each block as read.
 */
export async function computeBlockChecksums(
  handler: RemoteHandler,
  path: string,
  opts: { signal?: AbortSignal; onBlock?(id: number, bytes: number): void } = {},
): Promise<BlockChecksums> {
  const raw = await readRawStructures(handler, path)
  const disposable = await openVhd(handler, path, { flags: 'r' })
  try {
    const vhd = disposable.value
    await vhd.readBlockAllocationTable()
    const builder = new BlockChecksumsBuilder({ blockSize: vhd.header.blockSize, maxTableEntries: vhd.header.maxTableEntries, parent: parentNameOf(raw) })
    builder.setStructures(raw)
    for (let id = 0; id < vhd.header.maxTableEntries; id++) {
      if (!vhd.containsBlock(id)) continue
      opts.signal?.throwIfAborted()
      const { buffer } = await vhd.readBlock(id)
      builder.addBlock(id, buffer)
      opts.onBlock?.(id, buffer.length)
    }
    return builder.build()
  } finally {
    await disposable.dispose()
  }
}
