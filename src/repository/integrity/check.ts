/**
 * Checks the blocks of one VHD against its trusted block checksums: all of them (`verify`), a
 * seeded random share (`verify --sample`), or a few (the base check before a delta). One code
 * path for all three.
 */
import { createHash } from 'node:crypto'
import { openVhd } from '../vhd-lib.js'
import type { RemoteHandler } from '../remote-handler.js'
import type { BlockChecksums } from './block-checksums.js'

export type BlockSelection =
  | { readonly kind: 'all' }
  /** `percent` of the blocks (at least one), chosen from `seed` */
  | { readonly kind: 'share'; readonly percent: number; readonly seed: number }
  /** `count` blocks (all when fewer), chosen from `seed` */
  | { readonly kind: 'count'; readonly count: number; readonly seed: number }

export interface BlockDamage {
  readonly id: number
  readonly reason: string
}

export interface BlocksCheck {
  readonly damaged: readonly BlockDamage[]
  readonly blocksRead: number
  readonly bytesRead: number
}

/** mulberry32: a small seeded PRNG, [0, 1) */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** the ids `selection` picks among `ids` (ascending); the same seed and path always pick the same */
export function selectBlocks(ids: readonly number[], selection: BlockSelection, path: string): number[] {
  if (selection.kind === 'all') return [...ids]
  const wanted =
    selection.kind === 'count'
      ? Math.min(ids.length, selection.count)
      : Math.min(ids.length, Math.max(ids.length === 0 || selection.percent <= 0 ? 0 : 1, Math.ceil((ids.length * selection.percent) / 100)))
  const salt = createHash('sha256').update(path).digest().readUInt32BE(0)
  const random = prng((selection.seed ^ salt) >>> 0)
  const pool = [...ids]
  for (let i = 0; i < wanted; i++) {
    const j = i + Math.floor(random() * (pool.length - i))
    ;[pool[i], pool[j]] = [pool[j]!, pool[i]!]
  }
  return pool.slice(0, wanted).sort((a, b) => a - b)
}

/** reads the selected blocks of the VHD at `path` and checks each against `list` */
export async function checkBlocks(
  handler: RemoteHandler,
  path: string,
  list: BlockChecksums,
  selection: BlockSelection,
  opts: { signal?: AbortSignal } = {},
): Promise<BlocksCheck> {
  const damaged: BlockDamage[] = []
  let blocksRead = 0
  let bytesRead = 0
  const disposable = await openVhd(handler, path, { flags: 'r', checkSecondFooter: false })
  try {
    const vhd = disposable.value
    await vhd.readBlockAllocationTable()
    for (const id of selectBlocks(list.blockIds(), selection, path)) {
      opts.signal?.throwIfAborted()
      if (!vhd.containsBlock(id)) {
        damaged.push({ id, reason: 'not allocated any more' })
        continue
      }
      let buffer: Buffer
      try {
        buffer = (await vhd.readBlock(id)).buffer
      } catch (error) {
        damaged.push({ id, reason: `unreadable: ${(error as Error).message}` })
        continue
      }
      blocksRead++
      bytesRead += buffer.length
      if (!list.verifyBlock(id, buffer)) damaged.push({ id, reason: 'its sha256 differs from the one recorded when the VHD was written' })
    }
  } finally {
    await disposable.dispose()
  }
  return { damaged, blocksRead, bytesRead }
}
