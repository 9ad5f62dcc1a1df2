/**
 * A chain of VHDs (a full and its deltas) read as ONE virtual disk: for each block, the newest
 * VHD holding it wins. Built on vhd-lib's `VhdSynthetic`, which works for VHD files and VHD
 * directories alike. Each block is read once, from the one VHD that holds its newest version:
 * a chain of 30 deltas costs one pass over the blocks, not 30; a few blocks are in memory at a
 * time (the one streamed and those read ahead).
 *
 * Every block streamed is checked against the block checksums recorded when its VHD was written
 * (src/repository/integrity/), as it passes, while the next block is read: a block that differs
 * fails the stream with DATA_DAMAGED naming the VHD, the block and the restore point, so a
 * restore never reports success with wrong bytes. Before the first byte, each VHD's footer,
 * header, BAT and locators are checked the same way (a VHD whose sidecar is gone is read once to
 * recompute its list against the digest its metadata records). With `allowDamaged`, the stream goes on and `onDamage` hears each damage.
 * VHDs written before block checksums (or with none recorded) are streamed unchecked.
 *
 * A merge interrupted in the disk's folder is finished first (see `finishPendingMerges`): until
 * then part of the chain has moved and its restore points would not read. The stream then holds
 * a read lock of the VM's chains (src/repository/lock.ts) from its opening to its end: no backup
 * run, merge or deletion changes the chain while it is read; opening waits for one in progress
 * (up to a timeout, then CHAIN_LOCKED).
 */
import { Readable } from 'node:stream'
import { BackupError } from '../errors.js'
import { chainOf } from '../repository/chain.js'
import { checksumsOf, readRecordedIntegrity, vmOfPath, type BlockChecksums } from '../repository/integrity/index.js'
import { acquireChainReadLock, type ReadLockOptions } from '../repository/lock.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import { openVhd, VhdSynthetic, type DisposableValue, type SizedReadable, type Vhd, type VhdBlock } from '../repository/vhd-lib.js'
import { finishPendingMerges, type PendingMergePolicy } from './pending-merge.js'

export interface ChainStream {
  readonly stream: Readable
  /** exact length of the stream in bytes */
  readonly length: number
}

/** damage found while reading a chain: a block (`block`) or a whole VHD's structures or list */
export interface ChainDamage {
  /** the VHD, from the remote root */
  readonly vhd: string
  readonly block?: number
  readonly reason: string
}

export interface OpenChainOptions {
  /**
   * what to do when a merge is pending in the disk's folder: `finish` it under the VM's chain
   * lock (the default), or `fail` with MERGE_PENDING without writing to the remote
   */
  readonly pendingMerge?: PendingMergePolicy
  /** the restore point being read (its metadata path), named in damage errors */
  readonly restorePoint?: string
  /** stream damaged data anyway instead of failing with DATA_DAMAGED; `onDamage` hears each damage */
  readonly allowDamaged?: boolean
  onDamage?(damage: ChainDamage): void
  /** how long to wait for a backup run holding the chain, and how (see `acquireChainReadLock`) */
  readonly lock?: ReadLockOptions
}

/** the VM folder a VHD path lies in, if it lies in one (only those are locked) */
function vmOf(path: string): string | undefined {
  try {
    return vmOfPath(path)
  } catch {
    return undefined
  }
}

function damageError(damage: ChainDamage, opts: OpenChainOptions): BackupError {
  const where = damage.block === undefined ? `VHD ${damage.vhd}` : `block ${damage.block} of VHD ${damage.vhd}`
  const point = opts.restorePoint === undefined ? '' : `restore point ${opts.restorePoint}: `
  return new BackupError(
    'DATA_DAMAGED',
    `${point}${where} is damaged: ${damage.reason}; nothing was restored as success (restore anyway with allowDamaged to get the data as it is, damaged blocks listed)`,
    { vhd: damage.vhd, ...(damage.block === undefined ? {} : { block: damage.block }), ...(opts.restorePoint === undefined ? {} : { restorePoint: opts.restorePoint }) },
  )
}

/** the trusted checksums of each VHD of `chain` (undefined: unchecked); damage to a whole VHD is reported or thrown here */
async function checksumsOfChain(handler: RemoteHandler, chain: readonly string[], opts: OpenChainOptions): Promise<(BlockChecksums | undefined)[]> {
  const recorded = await readRecordedIntegrity(handler, vmOfPath(chain[0]!))
  const lists: (BlockChecksums | undefined)[] = []
  for (const path of chain) {
    const integrity = await checksumsOf(handler, path, recorded)
    if (integrity.status === 'damaged') {
      const damage = { vhd: path, reason: integrity.reason }
      if (opts.allowDamaged !== true) throw damageError(damage, opts)
      opts.onDamage?.(damage)
      lists.push(integrity.list)
    } else {
      lists.push(integrity.status === 'listed' ? integrity.list : undefined)
    }
  }
  return lists
}

/** blocks read ahead of the one the stream asks for: one read in flight while a block is hashed and sent (more bought nothing measurable and held more memory) */
const READ_AHEAD = 1

/**
 * `synthetic` (the chain `vhds`, oldest first, with their lists) whose every full block read is
 * checked against the list of the VHD it comes from. vhd-lib's streams ask for the blocks one
 * after the other in ascending order: when the stream takes a block, the next READ_AHEAD blocks
 * are already being read (on the thread pool) while this one is hashed and sent. Damage is judged
 * as the stream takes each block, in order, never for a block read ahead and not taken. Returns
 * what waits for the reads still in flight (before the VHDs are closed).
 */
function checkedWithReadAhead(
  synthetic: Vhd,
  vhds: readonly Vhd[],
  paths: readonly string[],
  lists: readonly (BlockChecksums | undefined)[],
  opts: OpenChainOptions,
): () => Promise<void> {
  const readBlock = synthetic.readBlock.bind(synthetic) as (id: number, onlyBitmap?: boolean) => Promise<VhdBlock>
  const own = synthetic as unknown as { readBlock(id: number, onlyBitmap?: boolean): Promise<VhdBlock> }
  const entries = synthetic.header.maxTableEntries
  const ahead = new Map<number, Promise<VhdBlock>>()
  let cursor = -1
  const fill = (from: number): void => {
    cursor = Math.max(cursor, from)
    while (ahead.size < READ_AHEAD && cursor + 1 < entries) {
      const id = ++cursor
      if (!synthetic.containsBlock(id)) continue
      const read = readBlock(id)
      read.catch(() => {}) // rethrown when taken; never taken when the stream stops first
      ahead.set(id, read)
    }
  }
  own.readBlock = async (id: number, onlyBitmap = false) => {
    if (onlyBitmap) return readBlock(id, true)
    const read = ahead.get(id) ?? readBlock(id)
    ahead.delete(id)
    fill(id)
    const block = await read
    // the VHD the block came from: the newest holding it, as VhdSynthetic reads it
    let i = vhds.length - 1
    while (i > 0 && !vhds[i]!.containsBlock(id)) i--
    const list = lists[i]
    if (list !== undefined && !list.verifyBlock(id, block.buffer)) {
      const damage = {
        vhd: paths[i]!,
        block: id,
        reason: list.hasBlock(id) ? 'its sha256 differs from the one recorded when the VHD was written' : 'the VHD was written without this block',
      }
      if (opts.allowDamaged !== true) throw damageError(damage, opts)
      opts.onDamage?.(damage)
    }
    return block
  }
  return async () => {
    await Promise.allSettled([...ahead.values()])
    ahead.clear()
  }
}

/** opens the chain ending at `vhdPath` and closes it once `produce`'s stream ends, fails or is destroyed */
async function openSynthetic(
  handler: RemoteHandler,
  vhdPath: string,
  opts: OpenChainOptions,
  produce: (vhd: Vhd) => SizedReadable,
): Promise<ChainStream> {
  const vm = vmOf(vhdPath)
  // a backup run holding the chain is waited for: its merge state is no leftover to finish
  if (vm !== undefined) await (await acquireChainReadLock(handler, vm, opts.lock))()
  await finishPendingMerges(handler, vhdPath, opts.pendingMerge)
  const release = vm === undefined ? async () => {} : await acquireChainReadLock(handler, vm, opts.lock)
  const opened: DisposableValue<Vhd>[] = []
  let settleReads = async () => {}
  const disposeAll = async () => {
    await settleReads()
    for (const disposable of opened.splice(0)) await Promise.resolve(disposable.dispose()).catch(() => {})
    await release()
  }
  let stream: SizedReadable
  try {
    // a run that died between the check above and the lock may have left a merge: not finished under a read lock
    await finishPendingMerges(handler, vhdPath, 'fail')
    const chain = await chainOf(handler, vhdPath)
    const lists = await checksumsOfChain(handler, chain, opts)
    for (const path of chain) opened.push(await openVhd(handler, path, { flags: 'r' }))
    const vhds = opened.map(d => d.value)
    const synthetic = new VhdSynthetic(vhds)
    await synthetic.readHeaderAndFooter()
    await synthetic.readBlockAllocationTable()
    settleReads = checkedWithReadAhead(synthetic, vhds, chain, lists, opts)
    stream = produce(synthetic)
  } catch (error) {
    await disposeAll()
    throw error
  }
  const { length } = stream
  const source = stream
  // the chain is closed and its lock released before the stream ends or fails: whoever saw the
  // end (or the error) may start a backup run of the VM at once
  async function* guarded(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of source) yield chunk as Buffer
    } finally {
      await disposeAll()
    }
  }
  // vhd-lib's streams are `readable-stream` v3 streams: hand out a native one; destroying it
  // stops the iteration, which destroys the source
  const native = Readable.from(guarded(), { objectMode: false })
  // destroyed before its first read, the generator never runs its `finally`
  native.once('close', () => void disposeAll())
  return { stream: native, length }
}

const BAT_OFFSET = 512 + 1024

/**
 * `stream` (a VHD stream, footer then header then BAT) with the BAT's padding — from its last
 * entry to the end of its sector — set to unused entries (0xff): vhd-lib's `stream()` allocates
 * the BAT without initialising it, so the padding would carry whatever the process's memory held
 * there (a leak, and two streams of the same chain that differ)
 */
export function withBatPaddingSet(stream: SizedReadable, maxTableEntries: number): SizedReadable {
  const start = BAT_OFFSET + maxTableEntries * 4
  const end = BAT_OFFSET + Math.ceil((maxTableEntries * 4) / 512) * 512
  async function* patched(): AsyncGenerator<Buffer> {
    let offset = 0
    for await (const data of stream) {
      let chunk = data as Buffer
      const from = Math.max(start, offset)
      const to = Math.min(end, offset + chunk.length)
      if (from < to) {
        chunk = Buffer.from(chunk)
        chunk.fill(0xff, from - offset, to - offset)
      }
      offset += chunk.length
      yield chunk
    }
  }
  return Object.assign(Readable.from(patched(), { objectMode: false }), { length: stream.length })
}

/** the chain ending at `vhdPath` as one dynamic VHD stream (footer UUID: the newest VHD's) */
export function openChainVhdStream(handler: RemoteHandler, vhdPath: string, opts: OpenChainOptions = {}): Promise<ChainStream> {
  return openSynthetic(handler, vhdPath, opts, vhd => withBatPaddingSet(vhd.stream(), vhd.header.maxTableEntries))
}

/** the chain ending at `vhdPath` as raw disk bytes (the virtual size of the newest VHD) */
export function openChainRawStream(handler: RemoteHandler, vhdPath: string, opts: OpenChainOptions = {}): Promise<ChainStream> {
  return openSynthetic(handler, vhdPath, opts, vhd => vhd.rawContent())
}
