/**
 * Merge of a chain of VHD directories (`.alias.vhd` files pointing at `data/<name>.vhd/`) into its
 * full, without reading or writing block data: each block file of the newest child that holds it
 * is renamed into the full's folder. Only a block that its newest holder has partially (a sector
 * bitmap with holes) is composed from the layers and written; reading the 512-byte bitmap of each
 * moved block is the only other read.
 *
 * Steps (each idempotent, recorded in the state file):
 * - blocks: move (or compose) the blocks into the full's folder. A block already moved by an
 *   interrupted run is recognised by its absence from the child and presence in the full.
 *   Then the full's bat and header, flushed.
 * - rename: the full's footer takes the newest child's UUID and size, and the full's alias is
 *   renamed over the newest child's alias (atomic): the kept restore point now designates the
 *   merged folder.
 *   Then the merged children’s aliases and folders and the newest child’s old folder go.
 * Between the first block move and the alias rename, the kept restore point's chain misses the
 * moved blocks (a reader gets ENOENT, never wrong data) until the merge, or its resumption,
 * completes: renaming cannot leave a block in two places at once.
 */
import { posix } from 'node:path'
import { BackupError } from '../../errors.js'
import type { RemoteHandler } from '../remote-handler.js'
import { composeBlock, geometryOf, isFullBitmap } from './blocks.js'
import { syncDir, syncPath } from './durable.js'
import { isMissing, throwIfAborted, type MergeRunOptions } from './options.js'
import { forEachConcurrently } from '../concurrency.js'
import { dirOf, baseOf, removeMergeState, writeMergeState, type DirectoryMergePlan, type MergeState } from './state.js'
import { DISK_TYPES, vhdAliases, vhdLib, vhdStructs, vhdUtils, type VhdDirectoryInstance, type VhdHeader } from '../vhd-lib.js'
import { sha256, type BlockChecksums, type Structures } from '../integrity/index.js'
import { readPendingList, runCheckStep, runChecksumsStep } from './integrity.js'

/** block renames in flight at once (an object store copies each one) */
const MOVE_CONCURRENCY = 8

function broken(message: string, path: string, cause?: unknown): BackupError {
  return new BackupError('CHAIN_BROKEN', message, { path }, cause === undefined ? undefined : { cause })
}

const isEnoent = isMissing

function ignoreEnoent(error: unknown): void {
  if (!isEnoent(error)) {
    throw error
  }
}

/** Remove a folder and everything in it; nothing to do when it is already gone. */
async function removeTree(handler: RemoteHandler, path: string): Promise<void> {
  const entries = await handler.list(path, { ignoreMissing: true })
  // an object store has no empty folder (and refuses to delete an empty prefix)
  if (entries.length === 0 && handler.type !== 'file') {
    return
  }
  await handler.rmtree(path).catch(ignoreEnoent)
}

interface DirLayer {
  readonly dataPath: string
  readonly vhd: VhdDirectoryInstance
}

async function openLayer(handler: RemoteHandler, dataPath: string, flags: 'r' | 'r+'): Promise<DirLayer> {
  try {
    const { value: vhd } = await vhdLib.VhdDirectory.open(handler, dataPath, { flags })
    await vhd.readBlockAllocationTable()
    return { dataPath, vhd }
  } catch (error) {
    throw broken(`cannot open the VHD directory ${dataPath}`, dataPath, error)
  }
}

function checkChain(layers: DirLayer[]): void {
  const [parent, ...children] = layers
  if (parent!.vhd.footer.diskType !== DISK_TYPES.DYNAMIC && parent!.vhd.footer.diskType !== DISK_TYPES.DIFFERENCING) {
    throw broken(`${parent!.dataPath} is neither a dynamic (full) nor a differencing VHD`, parent!.dataPath)
  }
  let previous = parent!
  for (const child of children) {
    const { vhd } = child
    if (vhd.footer.diskType !== DISK_TYPES.DIFFERENCING) {
      throw broken(`${child.dataPath} is not a differencing VHD`, child.dataPath)
    }
    if (!vhd.header.parentUuid.equals(previous.vhd.footer.uuid)) {
      throw broken(`${child.dataPath} is not a child of ${previous.dataPath}`, child.dataPath)
    }
    if (vhd.header.blockSize !== parent!.vhd.header.blockSize) {
      throw broken(`${child.dataPath} has another block size than ${parent!.dataPath}`, child.dataPath)
    }
    if (vhd.compressionType !== parent!.vhd.compressionType) {
      throw broken(`${child.dataPath} is compressed unlike ${parent!.dataPath}`, child.dataPath)
    }
    previous = child
  }
}

/** For each block any child holds (ascending, below `maxTableEntries`): the children holding it, oldest first. */
function holdersOfBlocks(children: DirLayer[], maxTableEntries: number): Map<number, DirLayer[]> {
  const holders = new Map<number, DirLayer[]>()
  for (let block = 0; block < maxTableEntries; block++) {
    const list = children.filter(child => child.vhd.containsBlock(block))
    if (list.length > 0) {
      holders.set(block, list)
    }
  }
  return holders
}

/** Open and check a chain of VHD directories and plan its merge. */
export async function planDirectoryMerge(
  handler: RemoteHandler,
  chain: string[],
  statePath: string,
): Promise<{ plan: DirectoryMergePlan; blocks: number; parentHeader: number; childHeader: number }> {
  const dataPaths: string[] = []
  for (const alias of chain) {
    try {
      dataPaths.push(await vhdAliases.resolveVhdAlias(handler, alias))
    } catch (error) {
      throw broken(`cannot resolve the alias ${alias}`, alias, error)
    }
  }
  const layers: DirLayer[] = []
  for (const dataPath of dataPaths) {
    layers.push(await openLayer(handler, dataPath, 'r'))
  }
  checkChain(layers)
  const [parent, ...children] = layers
  const newest = children[children.length - 1]!.vhd
  const maxTableEntries = Math.max(parent!.vhd.header.maxTableEntries, newest.header.maxTableEntries)
  const footer = vhdStructs.fuFooter.pack({
    ...parent!.vhd.footer,
    currentSize: newest.footer.currentSize,
    originalSize: newest.footer.originalSize,
    diskGeometry: { ...newest.footer.diskGeometry },
    timestamp: newest.footer.timestamp,
    uuid: newest.footer.uuid,
    // a full stays a full; a delta merged with its child stays a delta of the full's parent
    diskType: parent!.vhd.footer.diskType,
  })
  vhdStructs.checksumStruct(footer, vhdStructs.fuFooter)
  const stateDir = dirOf(statePath)
  return {
    plan: {
      format: 'directory',
      dataPaths: dataPaths.map(path => posix.relative(posix.resolve('/', stateDir), posix.resolve('/', path))),
      maxTableEntries,
      mergedHeaderChecksum: mergedHeaderChecksum(parent!.vhd.header, maxTableEntries),
      footer: footer.toString('base64'),
    },
    blocks: holdersOfBlocks(children, maxTableEntries).size,
    parentHeader: parent!.vhd.header.checksum,
    childHeader: newest.header.checksum,
  }
}

/** the merged full's `header` chunk as vhd-lib writes it */
function mergedHeader(header: VhdHeader, maxTableEntries: number): Buffer {
  const raw = vhdStructs.fuHeader.pack({ ...header, maxTableEntries })
  vhdStructs.checksumStruct(raw, vhdStructs.fuHeader)
  return raw
}

function mergedHeaderChecksum(header: VhdHeader, maxTableEntries: number): number {
  return vhdUtils.unpackHeader(mergedHeader(header, maxTableEntries)).checksum
}

/** the `bat` chunk vhd-lib's VhdDirectory writes: one byte per entry, a bit set for each block held */
function directoryBat(maxTableEntries: number, ids: Iterable<number>): Buffer {
  const bat = Buffer.alloc(maxTableEntries)
  for (const id of ids) bat[id >> 3]! |= 0x80 >> (id & 7)
  return bat
}

function allocatedBlocks(vhd: VhdDirectoryInstance): number[] {
  const allocated: number[] = []
  for (let block = 0; block < vhd.header.maxTableEntries; block++) {
    if (vhd.containsBlock(block)) {
      allocated.push(block)
    }
  }
  return allocated
}

function resolveFromState(statePath: string, relative: string): string {
  return posix.resolve('/', dirOf(statePath), relative).slice(1)
}

async function exists(handler: RemoteHandler, path: string): Promise<boolean> {
  try {
    await handler.getSize(path)
    return true
  } catch (error) {
    ignoreEnoent(error)
    return false
  }
}

async function moveBlocks(
  handler: RemoteHandler,
  parent: DirLayer,
  holders: Map<number, DirLayer[]>,
  scratchPath: string,
  list: BlockChecksums | undefined,
  opts: MergeRunOptions,
): Promise<Set<string>> {
  const geometry = geometryOf(parent.vhd.header.blockSize)
  const readsWholeBlocks = parent.vhd.compressionType !== undefined || (handler as { isEncrypted?: boolean }).isEncrypted === true
  const touchedDirs = new Set<string>()
  let scratch: VhdDirectoryInstance | undefined

  const readBitmap = async (layer: DirLayer, block: number): Promise<Buffer> => {
    if (readsWholeBlocks) {
      return (await layer.vhd.readBlock(block)).bitmap
    }
    const bitmap = Buffer.alloc(geometry.bitmapSize)
    const { bytesRead } = await handler.read(layer.vhd.getFullBlockPath(block), bitmap, 0)
    if (bytesRead !== bitmap.length) {
      throw broken(`short block in ${layer.dataPath}`, layer.vhd.getFullBlockPath(block))
    }
    return bitmap
  }

  const compose = async (block: number, layers: DirLayer[], target: string): Promise<void> => {
    const base = parent.vhd.containsBlock(block) ? (await parent.vhd.readBlock(block)).buffer : undefined
    const buffers: Buffer[] = []
    for (const layer of layers) {
      buffers.push((await layer.vhd.readBlock(block)).buffer)
    }
    if (scratch === undefined) {
      scratch = (await vhdLib.VhdDirectory.create(handler, scratchPath, { flags: 'w', compression: parent.vhd.compressionType })).value
      scratch.header = parent.vhd.header
    }
    const composed = composeBlock(base, buffers, geometry)
    if (list !== undefined && !list.verifyBlock(block, composed)) {
      throw new BackupError(
        'DATA_DAMAGED',
        `block ${block} to be merged into ${parent.dataPath} is not the one checked when the merge started (its sha256 differs): the merge stopped before writing it`,
        { path: parent.dataPath, block },
      )
    }
    // written aside, then renamed over the full's block: the full's block is never torn
    await scratch.writeEntireBlock({ id: block, buffer: composed })
    await syncPath(handler, scratch.getFullBlockPath(block))
    await handler.rename(scratch.getFullBlockPath(block), target)
  }

  const blocks = [...holders.keys()]
  const total = blocks.length
  let done = 0
  opts.onProgress?.(0, total)
  await forEachConcurrently(blocks, MOVE_CONCURRENCY, async block => {
    throwIfAborted(opts.signal)
    const layers = holders.get(block)!
    const newest = layers[layers.length - 1]!
    const source = newest.vhd.getFullBlockPath(block)
    const target = parent.vhd.getFullBlockPath(block)
    touchedDirs.add(dirOf(source)).add(dirOf(target))
    let bitmap: Buffer | undefined
    try {
      bitmap = await readBitmap(newest, block)
    } catch (error) {
      // moved by an interrupted run of this merge
      if (!isEnoent(error) || !(await exists(handler, target))) {
        throw error
      }
    }
    if (bitmap !== undefined) {
      if (isFullBitmap(bitmap, geometry)) {
        await handler.rename(source, target)
      } else {
        await compose(block, layers, target)
      }
    }
    done++
    opts.onProgress?.(done, total)
  })
  return touchedDirs
}

/**
 * The full's bat and header, then one flush for them and for the folders the blocks moved between
 * (`touchedDirs`), all at once: the file system commits them together. Flushing the bat with the
 * moves costs nothing in safety: until the state records `rename`, an interruption redoes the
 * moves a crash lost and this metadata, and the kept restore point reads the moved blocks through
 * the child, whose bat still lists them: from the child's folder where a move was lost, never
 * through the full's bat.
 */
async function writeMetadata(
  handler: RemoteHandler,
  parent: DirLayer,
  holders: Map<number, DirLayer[]>,
  plan: DirectoryMergePlan,
  touchedDirs: Iterable<string>,
): Promise<void> {
  const { vhd } = parent
  const allocated = allocatedBlocks(vhd)
  vhd.header = { ...vhd.header, maxTableEntries: plan.maxTableEntries }
  vhd.setAllocatedBlocks([...allocated, ...holders.keys()])
  await vhd.writeBlockAllocationTable()
  await vhd.writeHeader()
  await Promise.all([
    syncPath(handler, `${parent.dataPath}/bat`),
    syncPath(handler, `${parent.dataPath}/header`),
    syncDir(handler, parent.dataPath),
    ...[...touchedDirs].map(dir => syncDir(handler, dir).catch(ignoreEnoent)),
  ])
}

/**
 * The merged full's footer: the newest child's UUID and size, written right before the alias
 * rename, and flushed with it (until the state is gone, an interruption redoes both).
 */
async function writeFooter(handler: RemoteHandler, dataPath: string, plan: DirectoryMergePlan): Promise<void> {
  const { value: vhd } = await vhdLib.VhdDirectory.open(handler, dataPath, { flags: 'r+' })
  vhd.footer = vhdUtils.unpackFooter(Buffer.from(plan.footer, 'base64'))
  await vhd.writeFooter()
}

/** the structures of the merged VHD as the merge of `plan` (its state at `statePath`) writes them (read before anything is written) */
export async function mergedDirectoryStructures(
  handler: RemoteHandler,
  statePath: string,
  plan: DirectoryMergePlan,
  lists: readonly BlockChecksums[],
): Promise<{ structures: Structures; maxTableEntries: number }> {
  const dataPaths = plan.dataPaths.map(path => resolveFromState(statePath, path))
  const parent = await openLayer(handler, dataPaths[0]!, 'r')
  const blocks = new Set(allocatedBlocks(parent.vhd))
  for (const dataPath of dataPaths.slice(1)) {
    const child = await openLayer(handler, dataPath, 'r')
    for (const block of allocatedBlocks(child.vhd)) if (block < plan.maxTableEntries) blocks.add(block)
  }
  return {
    maxTableEntries: plan.maxTableEntries,
    structures: {
      footer: sha256(Buffer.from(plan.footer, 'base64')),
      header: sha256(mergedHeader(parent.vhd.header, plan.maxTableEntries)),
      bat: sha256(directoryBat(plan.maxTableEntries, blocks)),
      locators: lists[0]!.structures.locators,
    },
  }
}

/** Carry out (or finish) the merge a state file describes, from its current step. */
export async function runDirectoryMerge(
  handler: RemoteHandler,
  statePath: string,
  state: MergeState,
  opts: MergeRunOptions,
): Promise<void> {
  const plan = state.plan
  if (plan.format !== 'directory') {
    throw new TypeError('not a VHD directory merge')
  }
  const dir = dirOf(statePath)
  const aliases = state.chain.map(name => `${dir}/${name}`)
  const dataPaths = plan.dataPaths.map(path => resolveFromState(statePath, path))
  const parentAlias = aliases[0]!
  const newestAlias = aliases[aliases.length - 1]!
  const parentData = dataPaths[0]!
  const scratchPath = `${dirOf(parentData)}/.${baseOf(parentData)}.merge`

  if (state.step === 'check') {
    await runCheckStep(handler, statePath, state, aliases, lists => mergedDirectoryStructures(handler, statePath, plan, lists), opts)
    state.step = 'blocks'
    await writeMergeState(handler, statePath, state)
  }

  if (state.step === 'blocks') {
    const pending = await readPendingList(handler, statePath, state)
    const list = pending === 'done' ? undefined : pending
    const parent = await openLayer(handler, parentData, 'r+')
    const children: DirLayer[] = []
    for (const dataPath of dataPaths.slice(1)) {
      children.push(await openLayer(handler, dataPath, 'r'))
    }
    const holders = holdersOfBlocks(children, plan.maxTableEntries)
    // the full's header is the original one, or the merged one if an interrupted run wrote it
    const parentHeader = parent.vhd.header.checksum
    if (
      (parentHeader !== state.parent.header && parentHeader !== plan.mergedHeaderChecksum) ||
      children[children.length - 1]!.vhd.header.checksum !== state.child.header
    ) {
      throw broken(`the VHDs of ${parentAlias} changed since its merge started`, parentAlias)
    }
    checkChain([parent, ...children])
    const touchedDirs = await moveBlocks(handler, parent, holders, scratchPath, list, opts)
    throwIfAborted(opts.signal)
    await writeMetadata(handler, parent, holders, plan, touchedDirs)
    state.step = 'rename'
    await writeMergeState(handler, statePath, state)
  }

  if (state.step === 'rename') {
    await writeFooter(handler, parentData, plan)
    try {
      await handler.rename(parentAlias, newestAlias)
    } catch (error) {
      if (!isEnoent(error) || (await vhdAliases.resolveVhdAlias(handler, newestAlias)) !== parentData) {
        throw error
      }
      // renamed before an interruption
    }
    await Promise.all([syncPath(handler, `${parentData}/footer`), syncDir(handler, dir)])
    // not recorded: a resumed `rename` finds the rename done and goes on with the checksums
    state.step = 'checksums'
  }

  if (state.step === 'checksums') {
    await runChecksumsStep(handler, statePath, state, newestAlias, aliases.slice(0, -1))
  }

  await removeTree(handler, dataPaths[dataPaths.length - 1]!)
  for (const [i, alias] of aliases.entries()) {
    if (i === 0 || i === aliases.length - 1) {
      continue
    }
    await handler.unlink(alias).catch(ignoreEnoent)
    await removeTree(handler, dataPaths[i]!)
  }
  await removeTree(handler, scratchPath)
  await removeMergeState(handler, statePath)
}
