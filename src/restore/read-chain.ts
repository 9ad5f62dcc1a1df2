/**
 * A chain of VHDs (a full and its deltas) read as ONE virtual disk: for each block, the newest
 * VHD holding it wins. Built on vhd-lib's `VhdSynthetic`, which works for VHD files and VHD
 * directories alike. Each block is read once, from the one VHD that holds its newest version:
 * a chain of 30 deltas costs one pass over the blocks, not 30; one block is in memory at a time.
 *
 * A merge interrupted in the disk's folder is finished first (see `finishPendingMerges`): until
 * then part of the chain has moved and its restore points would not read.
 */
import { Readable } from 'node:stream'
import { chainOf } from '../repository/chain.js'
import type { RemoteHandler } from '../repository/remote-handler.js'
import { VhdSynthetic, type SizedReadable, type Vhd } from '../repository/vhd-lib.js'
import { finishPendingMerges, type PendingMergePolicy } from './pending-merge.js'

export interface ChainStream {
  readonly stream: Readable
  /** exact length of the stream in bytes */
  readonly length: number
}

export interface OpenChainOptions {
  /**
   * what to do when a merge is pending in the disk's folder: `finish` it under the VM's chain
   * lock (the default), or `fail` with MERGE_PENDING without writing to the remote
   */
  readonly pendingMerge?: PendingMergePolicy
}

/** opens the chain ending at `vhdPath` and closes it once `produce`'s stream ends, fails or is destroyed */
async function openSynthetic(
  handler: RemoteHandler,
  vhdPath: string,
  opts: OpenChainOptions,
  produce: (vhd: Vhd) => SizedReadable,
): Promise<ChainStream> {
  await finishPendingMerges(handler, vhdPath, opts.pendingMerge)
  const chain = await chainOf(handler, vhdPath)
  const disposable = await VhdSynthetic.open(handler, chain, { flags: 'r' })
  let stream: SizedReadable
  try {
    await disposable.value.readBlockAllocationTable()
    stream = produce(disposable.value)
  } catch (error) {
    await disposable.dispose()
    throw error
  }
  const { length } = stream
  let disposed = false
  const dispose = () => {
    if (disposed) return
    disposed = true
    void Promise.resolve(disposable.dispose()).catch(() => {})
  }
  // vhd-lib's streams are `readable-stream` v3 streams: hand out a native one; destroying it
  // stops the iteration, which destroys the source
  const native = Readable.from(stream, { objectMode: false })
  native.once('end', dispose)
  native.once('error', dispose)
  native.once('close', dispose)
  return { stream: native, length }
}

/** the chain ending at `vhdPath` as one dynamic VHD stream (footer UUID: the newest VHD's) */
export function openChainVhdStream(handler: RemoteHandler, vhdPath: string, opts: OpenChainOptions = {}): Promise<ChainStream> {
  return openSynthetic(handler, vhdPath, opts, vhd => vhd.stream())
}

/** the chain ending at `vhdPath` as raw disk bytes (the virtual size of the newest VHD) */
export function openChainRawStream(handler: RemoteHandler, vhdPath: string, opts: OpenChainOptions = {}): Promise<ChainStream> {
  return openSynthetic(handler, vhdPath, opts, vhd => vhd.rawContent())
}
