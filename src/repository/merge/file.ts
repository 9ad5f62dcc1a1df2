/**
 * Merge of a chain of VHD files into its full, in place.
 *
 * The children's blocks are copied into the full at their final offsets (blocks the full lacks
 * are appended after its data, in ascending order), reading each child in large sequential runs
 * with several writes in flight. The full's BAT, header and footer are rewritten once, after the
 * block data is on stable storage; then the full takes the newest child's name.
 *
 * Why each step is safe while the kept restore points stay readable:
 * - blocks: every sector written into the full is one that a child still present overrides (or
 *   the full's own sector, unchanged), and the full's BAT still lists only its own blocks; the
 *   trailing footer is first copied to the end of the grown file, so the full stays a valid VHD.
 *   Then the BAT and header: the new BAT entries point at blocks the children override too.
 * - rename: the footers take the newest child's UUID and size, then the full takes its name
 *   (atomic). Only between these two does a strict reader see a parent whose footers disagree
 *   or whose UUID its child no longer names; the bytes it would read are right all along.
 *   Then the merged children go: nothing references them any more.
 * A crash anywhere leaves a state file from which every step is redone identically.
 */
import { createHash } from 'node:crypto'
import { endianness } from 'node:os'
import { BackupError } from '../../errors.js'
import type { FileDescriptor, RemoteHandler } from '../remote-handler.js'
import { fullBlockSize, geometryOf, isFullBitmap, overlayBlock, SECTOR, type BlockGeometry } from './blocks.js'
import { syncDir, syncFile } from './durable.js'
import { dirOf, writeMergeState, removeMergeState, type FileMergePlan, type MergeState } from './state.js'
import { BLOCK_UNUSED, DISK_TYPES, FOOTER_SIZE, HEADER_SIZE, PLATFORMS, vhdStructs, vhdUtils } from '../vhd-lib.js'
import type { VhdFooter, VhdHeader } from '../vhd-lib.js'
import { isMissing, throwIfAborted, type MergeRunOptions } from './options.js'
import { sha256, type BlockChecksums, type Structures } from '../integrity/index.js'
import { readPendingList, runCheckStep, runChecksumsStep } from './integrity.js'

/** bytes read from a child in one request */
const RUN_BYTES = 8 * 1024 * 1024

interface FileLayer {
  readonly path: string
  readonly fd: FileDescriptor
  readonly footer: VhdFooter
  readonly header: VhdHeader
  readonly rawFooter: Buffer
  readonly size: number
}

/** BAT entries read at once from each VHD while scanning the BATs (256 KiB a VHD) */
const BAT_CHUNK_ENTRIES = 64 * 1024

/** where one VHD's BAT is: its entries are big-endian sector numbers */
interface BatLocation {
  readonly fd: FileDescriptor
  readonly tableOffset: number
  readonly entries: number
}

function batOf(layer: FileLayer): BatLocation {
  return { fd: layer.fd, tableOffset: layer.header.tableOffset, entries: layer.header.maxTableEntries }
}

/**
 * What a merge needs of the BATs of a chain, read chunk by chunk (the BATs of a 2 TiB disk are
 * 4 MiB each: nothing holds them whole, so memory follows the changed blocks).
 */
interface BatScan {
  /** blocks any child holds, ascending */
  readonly union: number[]
  /** `sectors[i][k]`: the sector of block `union[k]` in VHD `i` of the chain (0: the full), BLOCK_UNUSED if absent */
  readonly sectors: number[][]
  /** byte offset right after the full's last block (0 when it has none) */
  readonly parentDataEnd: number
  /** lowest byte offset of a block of the full at or after `after` (Infinity when none is) */
  readonly parentFirstBlockAfter: number
}

/** a BAT entry as read in host byte order, decoded (`BLOCK_UNUSED` reads the same in both orders) */
const fromBigEndian: (raw: number) => number =
  endianness() === 'LE' ? raw => ((raw & 0xff) * 0x1000000 + ((raw >>> 8) & 0xff) * 0x10000 + ((raw >>> 16) & 0xff) * 0x100 + (raw >>> 24)) : raw => raw

async function scanBats(
  handler: RemoteHandler,
  parent: BatLocation,
  children: BatLocation[],
  maxTableEntries: number,
  geometry: BlockGeometry,
  after: number,
): Promise<BatScan> {
  const full = fullBlockSize(geometry)
  const layers = [parent, ...children]
  // read as 32-bit words: most entries are unused, and telling so needs no byte swap
  const chunks = layers.map(layer => new Uint32Array(Math.min(BAT_CHUNK_ENTRIES, Math.max(1, layer.entries))))
  const held = new Uint8Array(BAT_CHUNK_ENTRIES)
  const union: number[] = []
  const sectors: number[][] = layers.map(() => [])
  let parentDataEnd = 0
  let parentFirstBlockAfter = Infinity
  const scanned = Math.max(maxTableEntries, parent.entries)
  for (let first = 0; first < scanned; first += BAT_CHUNK_ENTRIES) {
    const count = Math.min(BAT_CHUNK_ENTRIES, scanned - first)
    // each layer's entries of this chunk (those past a layer's table are absent: 0 of them)
    const lengths: number[] = []
    for (const [i, layer] of layers.entries()) {
      const entries = Math.max(0, Math.min(count, layer.entries - first))
      lengths.push(entries)
      if (entries === 0) continue
      const view = Buffer.from(chunks[i]!.buffer, 0, entries * 4)
      const { bytesRead } = await handler.read(layer.fd, view, layer.tableOffset + first * 4)
      if (bytesRead !== view.length) throw broken(`short read of the block allocation table: ${bytesRead} of ${view.length} bytes`, layer.fd.path)
    }
    const entry = (i: number, k: number): number => (k < lengths[i]! ? fromBigEndian(chunks[i]![k]!) : BLOCK_UNUSED)
    const own = chunks[0]!
    const ownLength = lengths[0]!
    // the full's entries: where its data ends
    for (let k = 0; k < ownLength; k++) {
      if (own[k] === BLOCK_UNUSED) continue
      const offset = fromBigEndian(own[k]!) * SECTOR
      parentDataEnd = Math.max(parentDataEnd, offset + full)
      if (offset >= after) parentFirstBlockAfter = Math.min(parentFirstBlockAfter, offset)
    }
    // the blocks any child holds
    const last = Math.max(0, Math.min(count, maxTableEntries - first))
    held.fill(0, 0, last)
    for (let i = 1; i < layers.length; i++) {
      const entries = chunks[i]!
      const end = Math.min(last, lengths[i]!)
      for (let k = 0; k < end; k++) if (entries[k] !== BLOCK_UNUSED) held[k] = 1
    }
    for (let k = 0; k < last; k++) {
      if (held[k] === 0) continue
      union.push(first + k)
      for (let i = 0; i < layers.length; i++) sectors[i]!.push(entry(i, k))
    }
  }
  return { union, sectors, parentDataEnd, parentFirstBlockAfter }
}

function broken(message: string, path: string, cause?: unknown): BackupError {
  return new BackupError('CHAIN_BROKEN', message, { path }, cause === undefined ? undefined : { cause })
}

async function readExactly(handler: RemoteHandler, fd: FileDescriptor, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length)
  const { bytesRead } = await handler.read(fd, buffer, position)
  if (bytesRead !== length) {
    throw broken(`short read: ${bytesRead} of ${length} bytes at ${position}`, fd.path)
  }
  return buffer
}

/** Fill `buffer` from `position`; a short read means the file is shorter than its BAT says. */
async function readInto(handler: RemoteHandler, fd: FileDescriptor, buffer: Buffer, position: number): Promise<Buffer> {
  const { bytesRead } = await handler.read(fd, buffer, position)
  if (bytesRead !== buffer.length) {
    throw broken(`short read: ${bytesRead} of ${buffer.length} bytes at ${position}`, fd.path)
  }
  return buffer
}

async function openLayer(
  handler: RemoteHandler,
  path: string,
  flags: 'r' | 'r+',
  checkEndFooter: boolean,
): Promise<FileLayer> {
  const fd = await handler.openFile(path, flags)
  try {
    const head = await readExactly(handler, fd, FOOTER_SIZE + HEADER_SIZE, 0)
    const rawFooter = Buffer.from(head.subarray(0, FOOTER_SIZE))
    let footer: VhdFooter
    let header: VhdHeader
    try {
      footer = vhdUtils.unpackFooter(rawFooter)
      header = vhdUtils.unpackHeader(head.subarray(FOOTER_SIZE), footer)
    } catch (error) {
      throw broken(`invalid VHD header or footer in ${path}`, path, error)
    }
    const size = await handler.getSize(fd)
    if (checkEndFooter) {
      const endFooter = await readExactly(handler, fd, FOOTER_SIZE, size - FOOTER_SIZE)
      if (!endFooter.equals(rawFooter)) {
        throw broken(`the trailing footer of ${path} differs from its leading one`, path)
      }
    }
    return { path, fd, footer, header, rawFooter, size }
  } catch (error) {
    await handler.closeFile(fd)
    throw error
  }
}

async function closeLayers(handler: RemoteHandler, layers: FileLayer[]): Promise<void> {
  await Promise.all(layers.map(layer => handler.closeFile(layer.fd).catch(() => undefined)))
}

function packHeader(header: VhdHeader): Buffer {
  const raw = vhdStructs.fuHeader.pack(header)
  vhdStructs.checksumStruct(raw, vhdStructs.fuHeader)
  return raw
}

function packFooter(footer: VhdFooter): Buffer {
  const raw = vhdStructs.fuFooter.pack(footer)
  vhdStructs.checksumStruct(raw, vhdStructs.fuFooter)
  return raw
}

/** Byte offset right after the header, BAT and parent locators of a VHD file. */
function endOfHeaders(layer: FileLayer): number {
  const { header } = layer
  let end = Math.max(FOOTER_SIZE + HEADER_SIZE, header.tableOffset + vhdUtils.computeBatSize(header.maxTableEntries))
  for (const entry of header.parentLocatorEntry) {
    if (entry.platformCode !== PLATFORMS.NONE) {
      end = Math.max(end, entry.platformDataOffset + entry.platformDataSpace * SECTOR)
    }
  }
  return end
}

/** Validate the chain and every header/footer link; returns the shared block geometry. */
function checkChain(parent: FileLayer, children: FileLayer[]): BlockGeometry {
  if (parent.footer.diskType !== DISK_TYPES.DYNAMIC && parent.footer.diskType !== DISK_TYPES.DIFFERENCING) {
    throw broken(`${parent.path} is neither a dynamic (full) nor a differencing VHD`, parent.path)
  }
  let previous = parent
  for (const child of children) {
    if (child.footer.diskType !== DISK_TYPES.DIFFERENCING) {
      throw broken(`${child.path} is not a differencing VHD`, child.path)
    }
    if (!child.header.parentUuid.equals(previous.footer.uuid)) {
      throw broken(`${child.path} is not a child of ${previous.path}`, child.path)
    }
    if (child.header.blockSize !== parent.header.blockSize) {
      throw broken(`${child.path} has another block size than ${parent.path}`, child.path)
    }
    previous = child
  }
  return geometryOf(parent.header.blockSize)
}

function makePlan(parent: FileLayer, children: FileLayer[], geometry: BlockGeometry, scan: BatScan): FileMergePlan {
  const newest = children[children.length - 1]!
  const full = fullBlockSize(geometry)
  const maxTableEntries = Math.max(parent.header.maxTableEntries, newest.header.maxTableEntries)
  const newBlocks = scan.union.filter((_, k) => scan.sectors[0]![k] === BLOCK_UNUSED)

  // first free byte: after the headers, every block and the trailing footer's current place
  const endOfData = Math.max(endOfHeaders(parent), scan.parentDataEnd)
  const appendSector = Math.ceil(Math.max(endOfData, parent.size - FOOTER_SIZE) / SECTOR)
  const dataEnd = appendSector * SECTOR + newBlocks.length * full

  // the BAT grows in place when the space behind it is free, else it moves behind the data
  const batSize = vhdUtils.computeBatSize(maxTableEntries)
  let tableOffset = parent.header.tableOffset
  if (batSize > vhdUtils.computeBatSize(parent.header.maxTableEntries)) {
    let limit = Math.min(appendSector * SECTOR, scan.parentFirstBlockAfter)
    for (const entry of parent.header.parentLocatorEntry) {
      if (entry.platformCode !== PLATFORMS.NONE && entry.platformDataOffset >= tableOffset) {
        limit = Math.min(limit, entry.platformDataOffset)
      }
    }
    if (tableOffset + batSize > limit) {
      tableOffset = dataEnd
    }
  }
  const footerOffset = Math.max(dataEnd, tableOffset + batSize)

  const header = packHeader({ ...parent.header, maxTableEntries, tableOffset })
  const footer = packFooter({
    ...parent.footer,
    currentSize: newest.footer.currentSize,
    originalSize: newest.footer.originalSize,
    diskGeometry: { ...newest.footer.diskGeometry },
    timestamp: newest.footer.timestamp,
    uuid: newest.footer.uuid,
    // a full stays a full; a delta merged with its child stays a delta of the full's parent
    diskType: parent.footer.diskType,
  })
  return {
    format: 'file',
    appendSector,
    newBlocks,
    originalTableOffset: parent.header.tableOffset,
    originalMaxTableEntries: parent.header.maxTableEntries,
    tableOffset,
    maxTableEntries,
    footerOffset,
    header: header.toString('base64'),
    footer: footer.toString('base64'),
  }
}

/** Open and check a chain of VHD files and plan its merge. */
export async function planFileMerge(
  handler: RemoteHandler,
  chain: string[],
): Promise<{ plan: FileMergePlan; blocks: number; parentHeader: number; childHeader: number }> {
  const layers: FileLayer[] = []
  try {
    for (const path of chain) {
      layers.push(await openLayer(handler, path, 'r', true).catch(error => {
        throw error instanceof BackupError ? error : broken(`cannot open ${path}`, path, error)
      }))
    }
    const [parent, ...children] = layers
    const geometry = checkChain(parent!, children)
    const newest = children[children.length - 1]!
    const maxTableEntries = Math.max(parent!.header.maxTableEntries, newest.header.maxTableEntries)
    const scan = await scanBats(handler, batOf(parent!), children.map(batOf), maxTableEntries, geometry, parent!.header.tableOffset)
    return {
      plan: makePlan(parent!, children, geometry, scan),
      blocks: scan.union.length,
      parentHeader: parent!.header.checksum,
      childHeader: newest.header.checksum,
    }
  } finally {
    await closeLayers(handler, layers)
  }
}

interface Run {
  readonly child: FileLayer
  readonly firstSector: number
  /** indexes into the scan's `union` */
  readonly blocks: number[]
}

/** Group the blocks each child provides into runs of adjacent blocks in that child's file. */
function makeRuns(children: FileLayer[], scan: BatScan, geometry: BlockGeometry): Run[] {
  const fullSectors = fullBlockSize(geometry) / SECTOR
  const maxBlocks = Math.max(1, Math.floor(RUN_BYTES / fullBlockSize(geometry)))
  const byChild = new Map<number, { k: number; sector: number }[]>()
  for (const k of scan.union.keys()) {
    let newest = 0
    for (let i = 1; i <= children.length; i++) {
      if (scan.sectors[i]![k] !== BLOCK_UNUSED) newest = i
    }
    const list = byChild.get(newest) ?? []
    list.push({ k, sector: scan.sectors[newest]![k]! })
    byChild.set(newest, list)
  }
  const runs: Run[] = []
  for (const [i, list] of byChild) {
    list.sort((a, b) => a.sector - b.sector)
    let run: { child: FileLayer; firstSector: number; blocks: number[] } | undefined
    for (const { k, sector } of list) {
      if (run !== undefined && sector === run.firstSector + run.blocks.length * fullSectors && run.blocks.length < maxBlocks) {
        run.blocks.push(k)
      } else {
        run = { child: children[i - 1]!, firstSector: sector, blocks: [k] }
        runs.push(run)
      }
    }
  }
  return runs
}

/**
 * Copy the children's blocks into the full. One writer: while a run is written, the next one is
 * read into the other of two reused buffers (buffered writes to one file are serialised by the
 * kernel anyway, so more writes in flight only add memory). Blocks a child holds only in part are
 * composed, one at a time, in two more reused block buffers.
 */
async function copyBlocks(
  handler: RemoteHandler,
  parent: FileLayer,
  children: FileLayer[],
  plan: FileMergePlan,
  scan: BatScan,
  list: BlockChecksums | undefined,
  opts: MergeRunOptions,
): Promise<void> {
  const { union, sectors } = scan
  const geometry = geometryOf(parent.header.blockSize)
  const full = fullBlockSize(geometry)
  /** a block is written only when it is the one the `check` step recorded for the merged VHD */
  const assertChecked = (block: number, buffer: Buffer): void => {
    if (list !== undefined && !list.verifyBlock(block, buffer)) throw changedSinceCheck(parent.path, block)
  }
  const rank = new Map(plan.newBlocks.map((block, i) => [block, i]))
  /** where block `union[k]` goes in the full: over its own copy, or appended */
  const targetOf = (k: number): number => {
    const sector = sectors[0]![k]!
    return sector !== BLOCK_UNUSED ? sector * SECTOR : plan.appendSector * SECTOR + rank.get(union[k]!)! * full
  }

  // keep a valid trailing footer at the end of the grown file before writing past the old one
  if (plan.footerOffset > parent.size - FOOTER_SIZE) {
    await handler.write(parent.fd, parent.rawFooter, plan.footerOffset)
  }

  let composed: Buffer | undefined
  let layer: Buffer | undefined
  const composeBlocks = async (k: number, newestBuffer: Buffer): Promise<void> => {
    composed ??= Buffer.allocUnsafe(full)
    layer ??= Buffer.allocUnsafe(full)
    const parentSector = sectors[0]![k]!
    if (parentSector === BLOCK_UNUSED) {
      composed.fill(0)
    } else {
      await readInto(handler, parent.fd, composed, parentSector * SECTOR)
    }
    const holders = children.flatMap((child, i) => (sectors[i + 1]![k] !== BLOCK_UNUSED ? [{ child, sector: sectors[i + 1]![k]! }] : []))
    for (const { child, sector } of holders.slice(0, -1)) {
      overlayBlock(composed, await readInto(handler, child.fd, layer, sector * SECTOR), geometry)
    }
    overlayBlock(composed, newestBuffer, geometry)
    assertChecked(union[k]!, composed)
    await handler.write(parent.fd, composed, targetOf(k))
  }

  const writeRun = async (run: Run, buffer: Buffer): Promise<void> => {
    const partial: number[] = []
    let segment: { start: number; end: number; target: number } | undefined
    const flush = async (): Promise<void> => {
      if (segment !== undefined) {
        const { start, end, target } = segment
        segment = undefined
        await handler.write(parent.fd, buffer.subarray(start, end), target)
      }
    }
    for (const [i, k] of run.blocks.entries()) {
      const start = i * full
      if (!isFullBitmap(buffer.subarray(start, start + geometry.bitmapSize), geometry)) {
        await flush()
        partial.push(i)
        continue
      }
      assertChecked(union[k]!, buffer.subarray(start, start + full))
      const target = targetOf(k)
      if (segment !== undefined && segment.end === start && segment.target + (segment.end - segment.start) === target) {
        segment.end = start + full
      } else {
        await flush()
        segment = { start, end: start + full, target }
      }
    }
    await flush()
    for (const i of partial) {
      await composeBlocks(run.blocks[i]!, buffer.subarray(i * full, (i + 1) * full))
    }
  }

  const runs = makeRuns(children, scan, geometry)
  const runBytes = Math.max(0, ...runs.map(run => run.blocks.length * full))
  const buffers = runs.length > 1 ? [Buffer.allocUnsafe(runBytes), Buffer.allocUnsafe(runBytes)] : [Buffer.allocUnsafe(runBytes)]
  const readRun = (index: number): Promise<Buffer> => {
    const run = runs[index]!
    const buffer = buffers[index % buffers.length]!.subarray(0, run.blocks.length * full)
    return readInto(handler, run.child.fd, buffer, run.firstSector * SECTOR)
  }

  const total = union.length
  let done = 0
  opts.onProgress?.(0, total)
  let next: Promise<Buffer> | undefined = runs.length > 0 ? readRun(0) : undefined
  try {
    for (const [index, run] of runs.entries()) {
      throwIfAborted(opts.signal)
      const buffer = await next!
      // the buffer of run index + 1 is the one run index - 1 used, whose writes are done
      next = index + 1 < runs.length ? readRun(index + 1) : undefined
      await writeRun(run, buffer)
      done += run.blocks.length
      opts.onProgress?.(done, total)
    }
  } finally {
    // a read ahead that nobody waits for any more must not become an unhandled rejection
    await next?.catch(() => undefined)
  }
}

function changedSinceCheck(path: string, block: number): BackupError {
  return new BackupError(
    'DATA_DAMAGED',
    `block ${block} to be merged into ${path} is not the one checked when the merge started (its sha256 differs): the merge stopped before writing it`,
    { path, block },
  )
}

/**
 * The merged full's BAT as stored, chunk by chunk in order (`offset` from the BAT's start): the
 * full's own entries (its BAT as it was, read from where it was) and the appended blocks, padded
 * with unused entries. `changed` tells a chunk that differs from what the full's BAT held there.
 */
async function forEachMergedBatChunk(
  handler: RemoteHandler,
  fd: FileDescriptor,
  plan: FileMergePlan,
  geometry: BlockGeometry,
  visit: (chunk: Buffer, offset: number, changed: boolean) => Promise<void> | void,
): Promise<void> {
  const full = fullBlockSize(geometry)
  const size = vhdUtils.computeBatSize(plan.maxTableEntries)
  const originalBytes = plan.originalMaxTableEntries * 4
  const chunkBytes = BAT_CHUNK_ENTRIES * 4
  const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, size))
  let next = 0
  for (let offset = 0; offset < size; offset += chunkBytes) {
    const chunk = buffer.subarray(0, Math.min(chunkBytes, size - offset))
    const own = Math.max(0, Math.min(chunk.length, originalBytes - offset))
    if (own > 0) await readInto(handler, fd, chunk.subarray(0, own), plan.originalTableOffset + offset)
    chunk.fill(0xff, own)
    let changed = own < chunk.length
    // newBlocks is ascending: entry i is the i-th block appended
    while (next < plan.newBlocks.length && plan.newBlocks[next]! * 4 < offset + chunk.length) {
      chunk.writeUInt32BE((plan.appendSector * SECTOR + next * full) / SECTOR, plan.newBlocks[next]! * 4 - offset)
      next++
      changed = true
    }
    await visit(chunk, offset, changed)
  }
}

/** sha256 of the merged full's BAT as stored */
async function mergedBatDigest(handler: RemoteHandler, fd: FileDescriptor, plan: FileMergePlan, geometry: BlockGeometry): Promise<Buffer> {
  const hash = createHash('sha256')
  await forEachMergedBatChunk(handler, fd, plan, geometry, chunk => void hash.update(chunk))
  return hash.digest()
}

/**
 * The merged full's BAT and header, then one flush for them and the blocks. The new entries point
 * at blocks that the children still override; an interruption before the flush completes leaves
 * the state at `blocks`, which redoes them. A BAT rewritten where it was gets only its changed
 * chunks written.
 */
async function writeTableAndHeader(handler: RemoteHandler, parent: FileLayer, plan: FileMergePlan, geometry: BlockGeometry): Promise<void> {
  const inPlace = plan.tableOffset === plan.originalTableOffset
  await forEachMergedBatChunk(handler, parent.fd, plan, geometry, async (chunk, offset, changed) => {
    if (changed || !inPlace) await handler.write(parent.fd, chunk, plan.tableOffset + offset)
  })
  await handler.write(parent.fd, Buffer.from(plan.header, 'base64'), FOOTER_SIZE)
  await syncFile(handler, parent.fd)
}

/**
 * The merged full's footers (the newest child's UUID and size), written right before the rename
 * so that the instant when the full's footers disagree, or no longer match its children's
 * headers, lasts two sector writes, a flush and a rename.
 */
async function writeFooters(handler: RemoteHandler, path: string, plan: FileMergePlan): Promise<void> {
  const fd = await handler.openFile(path, 'r+')
  try {
    const footer = Buffer.from(plan.footer, 'base64')
    await handler.write(fd, footer, plan.footerOffset)
    await handler.write(fd, footer, 0)
    await syncFile(handler, fd)
  } finally {
    await handler.closeFile(fd)
  }
}

/** Resolve the state's chain (relative to the state file) to paths from the remote root. */
export function chainOfState(statePath: string, state: MergeState): string[] {
  const dir = dirOf(statePath)
  return state.chain.map(name => `${dir}/${name}`)
}

async function isMergedFull(handler: RemoteHandler, path: string, plan: FileMergePlan): Promise<boolean> {
  try {
    const fd = await handler.openFile(path, 'r')
    try {
      const footer = await readExactly(handler, fd, FOOTER_SIZE, 0)
      return footer.equals(Buffer.from(plan.footer, 'base64'))
    } finally {
      await handler.closeFile(fd)
    }
  } catch (error) {
    if (isMissing(error)) {
      return false
    }
    throw error
  }
}

/** the structures of the merged VHD as the merge of `plan` into `parentPath` writes them (read before anything is written) */
export async function mergedFileStructures(
  handler: RemoteHandler,
  parentPath: string,
  plan: FileMergePlan,
  lists: readonly BlockChecksums[],
): Promise<{ structures: Structures; maxTableEntries: number }> {
  const geometry = geometryOf(vhdUtils.unpackHeader(Buffer.from(plan.header, 'base64')).blockSize)
  // the full as it is (nothing written yet): its BAT, and its locators as its list records them
  const parent = await openLayer(handler, parentPath, 'r', false)
  try {
    return {
      maxTableEntries: plan.maxTableEntries,
      structures: {
        footer: sha256(Buffer.from(plan.footer, 'base64')),
        header: sha256(Buffer.from(plan.header, 'base64')),
        bat: await mergedBatDigest(handler, parent.fd, plan, geometry),
        locators: lists[0]!.structures.locators,
      },
    }
  } finally {
    await closeLayers(handler, [parent])
  }
}

/** Carry out (or finish) the merge a state file describes, from its current step. */
export async function runFileMerge(
  handler: RemoteHandler,
  statePath: string,
  state: MergeState,
  opts: MergeRunOptions,
): Promise<void> {
  const plan = state.plan
  if (plan.format !== 'file') {
    throw new TypeError('not a VHD file merge')
  }
  const chain = chainOfState(statePath, state)
  const [parentPath] = chain
  const children = chain.slice(1)
  const newestPath = chain[chain.length - 1]!
  const geometry = geometryOf(vhdUtils.unpackHeader(Buffer.from(plan.header, 'base64')).blockSize)

  if (state.step === 'check') {
    await runCheckStep(handler, statePath, state, chain, lists => mergedFileStructures(handler, parentPath!, plan, lists), opts)
    state.step = 'blocks'
    await writeMergeState(handler, statePath, state)
  }

  if (state.step === 'blocks') {
    const pending = await readPendingList(handler, statePath, state)
    const list = pending === 'done' ? undefined : pending
    const layers: FileLayer[] = []
    try {
      layers.push(await openLayer(handler, parentPath!, 'r+', true))
      for (const path of children) {
        layers.push(await openLayer(handler, path, 'r', true))
      }
      const [parent, ...childLayers] = layers
      // the full's header is the original one, or the merged one if an interrupted run wrote it
      const mergedHeader = vhdUtils.unpackHeader(Buffer.from(plan.header, 'base64')).checksum
      if (
        (parent!.header.checksum !== state.parent.header && parent!.header.checksum !== mergedHeader) ||
        childLayers[childLayers.length - 1]!.header.checksum !== state.child.header
      ) {
        throw broken(`the VHDs of ${parentPath} changed since its merge started`, parentPath!)
      }
      checkChain(parent!, childLayers)
      // the full's BAT where it was: its own entries, and those of an interrupted run's appended blocks
      const original = { fd: parent!.fd, tableOffset: plan.originalTableOffset, entries: plan.originalMaxTableEntries }
      const scan = await scanBats(handler, original, childLayers.map(batOf), plan.maxTableEntries, geometry, plan.originalTableOffset)
      await copyBlocks(handler, parent!, childLayers, plan, scan, list, opts)
      throwIfAborted(opts.signal)
      await writeTableAndHeader(handler, parent!, plan, geometry)
    } finally {
      await closeLayers(handler, layers)
    }
    state.step = 'rename'
    await writeMergeState(handler, statePath, state)
  }

  if (state.step === 'rename') {
    try {
      await writeFooters(handler, parentPath!, plan)
      await handler.rename(parentPath!, newestPath)
    } catch (error) {
      if (!isMissing(error) || !(await isMergedFull(handler, newestPath, plan))) {
        throw error
      }
      // renamed before an interruption
    }
    await syncDir(handler, dirOf(newestPath))
    // not recorded: a resumed `rename` finds the rename done and goes on with the checksums
    state.step = 'checksums'
  }

  if (state.step === 'checksums') {
    await runChecksumsStep(handler, statePath, state, newestPath, chain.slice(0, -1))
  }

  // the merged children are referenced by nothing any more
  for (const path of children.slice(0, -1)) {
    await handler.unlink(path).catch((error: unknown) => {
      if (!isMissing(error)) {
        throw error
      }
    })
  }
  await removeMergeState(handler, statePath)
}
