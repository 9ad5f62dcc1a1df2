/**
 * Continuous merge: folds the oldest VHDs of a disk's chain into its full, so that the oldest
 * kept restore point becomes the new full under its own name. Works on VHD files (blocks copied
 * in place into the full) and VHD directories (block files renamed), costs time in proportion to
 * the changed blocks only, and survives a crash at any point: `resumeMerges` (or the next
 * `mergeChain` on the same chain) finishes an interrupted merge from its state file.
 */
import { BackupError } from '../../errors.js'
import type { RemoteHandler } from '../remote-handler.js'
import { mergedDirectoryStructures, planDirectoryMerge, runDirectoryMerge } from './directory.js'
import { mergedFileStructures, planFileMerge, runFileMerge } from './file.js'
import { throwIfAborted } from './options.js'
import {
  baseOf,
  dirOf,
  listMergeStates,
  mergeStatePath,
  readMergeState,
  writeMergeState,
  xoMergeStatePath,
  type MergeState,
} from './state.js'
import { vhdAliases } from '../vhd-lib.js'
import { exists } from '../remote-files.js'
import { removeMergeState } from './state.js'
import { checkMergeBlocks, isMergeRefused, listsOfChain, recordedDigestsOf, type MergeDamage } from './integrity.js'
import type { RecordedIntegrity } from '../integrity/index.js'

export { isMergeRefused, type MergeDamage } from './integrity.js'

export interface MergeOptions {
  signal?: AbortSignal
  /** blocks merged so far, out of the blocks the merge moves */
  onProgress?(done: number, total: number): void
  /**
   * what the restore points record about the VM's VHDs (block-checksum digests), read before
   * retention removed the metadata of the VHDs being merged; read from the VM folder when absent
   */
  recorded?: RecordedIntegrity
}

export interface MergeResult {
  /** the merged full, under the name of the newest VHD of the chain */
  mergedPath: string
  /** blocks merged (the union of the merged children's blocks) */
  blocks: number
  durationMs: number
}

function normalizePath(path: string): string {
  return path.replace(/^\/+/, '')
}

function checkChainPaths(chain: string[]): void {
  if (chain.length < 2) {
    throw new BackupError('INVALID_PARAMETER', 'a merge needs a full and at least one child', { chain })
  }
  const dir = dirOf(chain[0]!)
  if (!chain[0]!.includes('/')) {
    throw new BackupError('INVALID_PARAMETER', 'the VHDs of a chain are paths inside a folder of the remote', { chain })
  }
  const aliases = chain.filter(path => vhdAliases.isVhdAlias(path)).length
  if (aliases !== 0 && aliases !== chain.length) {
    throw new BackupError('INVALID_PARAMETER', 'a chain is either all VHD files or all VHD directory aliases', { chain })
  }
  if (chain.some(path => dirOf(path) !== dir) || new Set(chain).size !== chain.length) {
    throw new BackupError('INVALID_PARAMETER', 'the VHDs of a chain are distinct files of one folder', { chain })
  }
}

/**
 * A VHD file merge interrupted in its `blocks` step, whose full is gone while its target is
 * there: another merge engine (Xen Orchestra's clean-up, which does not know our state file)
 * merged the same VHDs into the target since. Our `blocks` step only ever writes into the full,
 * so the target is that engine's result, and there is nothing left to finish.
 */
async function mergedByAnotherEngine(handler: RemoteHandler, statePath: string, state: MergeState): Promise<boolean> {
  if (state.plan.format !== 'file' || (state.step !== 'blocks' && state.step !== 'check')) return false
  const dir = dirOf(statePath)
  return !(await exists(handler, `${dir}/${state.chain[0]!}`)) && (await exists(handler, `${dir}/${state.chain.at(-1)!}`))
}

async function runMerge(handler: RemoteHandler, statePath: string, state: MergeState, opts: MergeOptions): Promise<MergeResult> {
  const started = Date.now()
  if (await mergedByAnotherEngine(handler, statePath, state)) {
    await removeMergeState(handler, statePath)
    return { mergedPath: `${dirOf(statePath)}/${state.chain.at(-1)!}`, blocks: 0, durationMs: Date.now() - started }
  }
  const run = state.plan.format === 'file' ? runFileMerge : runDirectoryMerge
  const checking = state.step === 'check'
  try {
    await run(handler, statePath, state, opts)
  } catch (error) {
    // refused before anything of the chain changed: the chain stays as it is, the state goes
    if (checking && state.step === 'check' && isMergeRefused(error)) await removeMergeState(handler, statePath)
    throw error
  }
  return {
    mergedPath: `${dirOf(statePath)}/${state.chain[state.chain.length - 1]!}`,
    blocks: state.blocks,
    durationMs: Date.now() - started,
  }
}

/**
 * The interrupted merge of the chain starting at `parentPath`, if any: under our state name, or
 * under the name earlier versions used (Xen Orchestra's). A state in Xen Orchestra's format there
 * is Xen Orchestra's own merge of this very full: it must finish first.
 */
async function pendingStateOf(handler: RemoteHandler, parentPath: string): Promise<{ statePath: string; state: MergeState } | undefined> {
  for (const statePath of [mergeStatePath(parentPath), xoMergeStatePath(parentPath)]) {
    const state = await readMergeState(handler, statePath)
    if (state === 'foreign') {
      throw new BackupError(
        'CHAIN_LOCKED',
        `${statePath} is an interrupted merge of Xen Orchestra's own; the next run of Xen Orchestra's backup job of this VM (or its clean-up) finishes it`,
        { path: statePath },
      )
    }
    if (state !== undefined) return { statePath, state }
  }
  return undefined
}

/**
 * Merge every VHD of `chain` (oldest, a full, first; paths from the remote's root) but the last
 * into one full that ends under the last one's name, with its footer UUID; the others are removed.
 */
export async function mergeChain(handler: RemoteHandler, chain: string[], opts: MergeOptions = {}): Promise<MergeResult> {
  const started = Date.now()
  let remaining = chain.map(normalizePath)
  checkChainPaths(remaining)

  // an interrupted merge of the same full is finished first, then the rest of the chain follows
  const pending = await pendingStateOf(handler, remaining[0]!)
  let resumedBlocks = 0
  if (pending !== undefined) {
    const resumed = await runMerge(handler, pending.statePath, pending.state, opts)
    resumedBlocks = resumed.blocks
    const at = remaining.indexOf(resumed.mergedPath)
    if (at === -1) {
      throw new BackupError('CHAIN_BROKEN', `the interrupted merge of ${remaining[0]} ended in ${resumed.mergedPath}, outside the chain`, {
        path: pending.statePath,
      })
    }
    remaining = remaining.slice(at)
    if (remaining.length === 1) {
      return { ...resumed, durationMs: Date.now() - started }
    }
  }
  throwIfAborted(opts.signal)

  const nextStatePath = mergeStatePath(remaining[0]!)
  const directory = vhdAliases.isVhdAlias(remaining[0]!)
  const planned = directory ? await planDirectoryMerge(handler, remaining, nextStatePath) : await planFileMerge(handler, remaining)
  const state: MergeState = {
    engine: 'xo-server-continuous-delta',
    version: 1,
    step: 'check',
    chain: remaining.map(baseOf),
    parent: { header: planned.parentHeader },
    child: { header: planned.childHeader },
    blocks: planned.blocks,
    startedAt: Date.now(),
    plan: planned.plan,
    integrity: { digests: await recordedDigestsOf(handler, remaining, opts.recorded), pending: false },
  }
  await writeMergeState(handler, nextStatePath, state, { durable: false })
  const result = await runMerge(handler, nextStatePath, state, opts)
  return { ...result, blocks: result.blocks + resumedBlocks, durationMs: Date.now() - started }
}

/**
 * What the `check` step of a merge of `chain` would find, without starting the merge: the damage
 * that would refuse it (empty when it would go on). Nothing of the chain changes, no state is
 * written. For an operation that must not begin when its merge would be refused (deleting one
 * restore point deletes nothing then); the merge itself checks again when it runs.
 */
export async function checkMerge(handler: RemoteHandler, chain: string[], opts: Pick<MergeOptions, 'recorded' | 'signal'> = {}): Promise<MergeDamage[]> {
  const paths = chain.map(normalizePath)
  checkChainPaths(paths)
  const statePath = mergeStatePath(paths[0]!)
  const directory = vhdAliases.isVhdAlias(paths[0]!)
  const planned = directory ? await planDirectoryMerge(handler, paths, statePath) : await planFileMerge(handler, paths)
  const found = await listsOfChain(handler, paths, await recordedDigestsOf(handler, paths, opts.recorded), opts.signal)
  // a VHD of the chain has no checksums: the merge is not checked
  if (found === undefined) return []
  if ('damage' in found) return found.damage
  const plan = planned.plan
  const structures =
    plan.format === 'directory' ? await mergedDirectoryStructures(handler, statePath, plan, found.lists) : await mergedFileStructures(handler, paths[0]!, plan, found.lists)
  const checked = await checkMergeBlocks(handler, paths, found.lists, structures, opts.signal === undefined ? {} : { signal: opts.signal })
  return 'damage' in checked ? checked.damage : []
}

/**
 * Finish every interrupted merge of ours whose state file is in `dir` (under our name or the one
 * earlier versions used); Xen Orchestra's own are left to it.
 */
export async function resumeMerges(handler: RemoteHandler, dir: string, opts: MergeOptions = {}): Promise<MergeResult[]> {
  const results: MergeResult[] = []
  for (const statePath of await listMergeStates(handler, normalizePath(dir))) {
    const state = await readMergeState(handler, statePath)
    if (state === undefined || state === 'foreign') {
      continue
    }
    throwIfAborted(opts.signal)
    try {
      results.push(await runMerge(handler, statePath, state, opts))
    } catch (error) {
      // refused for damage before changing anything: nothing is pending any more, the chain is
      // as it was; the retention that planned it meets the damage again and reports it
      if (isMergeRefused(error)) continue
      throw error
    }
  }
  return results
}
