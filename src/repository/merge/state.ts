/**
 * The merge state file: `.<oldest VHD name>.cd-merge.json` beside the chain. It is written
 * (atomically, durably) before the merge changes anything and at each step change, and removed
 * when the merge is complete. It holds everything a later process needs to finish the merge
 * exactly as it was planned.
 *
 * Its name is ours on purpose: Xen Orchestra's clean-up takes every `.<name>.merge.json` for a
 * merge of its own (`/^\.(.+)\.merge\.json$/`) and fails on one in another format. Earlier
 * versions of this product used that name: such a state of ours (`engine` below) is still found
 * and finished; a state in Xen Orchestra's format under that name is Xen Orchestra's own merge
 * (`readXoMergeState`).
 */
import type { RemoteHandler } from '../remote-handler.js'
import { replaceFileAtomically, syncDir } from './durable.js'
import { isMissing } from './options.js'

/**
 * Steps, in order. Each one is idempotent: a resumed merge redoes its current step whole.
 * - check: every block the merge will copy is read and checked against the block checksums
 *   recorded for its VHD, and the merged VHD's checksum list is computed (the parent's recorded
 *   checksums for the blocks it keeps, the children's for the blocks they bring, a new sha256 only
 *   for a block composed from several layers); it is written beside the state (`.<full
 *   name>.cd-merge.checksums`). Nothing of the chain changes: a damaged block refuses the merge,
 *   the state goes, the chain stays as it was;
 * - blocks: the children's blocks go into the full (each checked again before it is written),
 *   then the full's BAT and header are updated (all of it invisible through the children, which
 *   still override those blocks);
 * - rename: the full takes the newest child's UUID and name (its completion is not recorded: redone,
 *   the step finds the rename done and goes on);
 * - checksums: the restore points' metadata record the merged list's digest, the merged VHD's
 *   sidecar becomes that list, the merged-away VHDs' sidecars go; then the merged children go.
 * States written by earlier versions start at `blocks` and carry no checksums.
 */
export const MERGE_STEPS = ['check', 'blocks', 'rename', 'checksums'] as const
export type MergeStep = (typeof MERGE_STEPS)[number]

/** Where a VHD file merge puts what the full does not hold yet. */
export interface FileMergePlan {
  readonly format: 'file'
  /** first sector of the blocks appended to the full, in ascending block order */
  readonly appendSector: number
  /** blocks appended to the full (absent from it before the merge), ascending */
  readonly newBlocks: number[]
  /** the full's BAT before the merge */
  readonly originalTableOffset: number
  readonly originalMaxTableEntries: number
  /** the merged full's BAT */
  readonly tableOffset: number
  readonly maxTableEntries: number
  /** byte offset of the merged full's trailing footer */
  readonly footerOffset: number
  /** the merged full's header and footer (base64, checksums included) */
  readonly header: string
  readonly footer: string
}

export interface DirectoryMergePlan {
  readonly format: 'directory'
  /** data folders behind each alias of the chain, relative to the state file's folder */
  readonly dataPaths: string[]
  readonly maxTableEntries: number
  /** checksum of the full's header once its BAT is sized for the merged disk */
  readonly mergedHeaderChecksum: number
  /** the merged full's footer (base64, checksum included) */
  readonly footer: string
}

export interface MergeState {
  readonly engine: 'xo-server-continuous-delta'
  readonly version: 1
  step: MergeStep
  /** the chain, oldest first, relative to the state file's folder */
  readonly chain: string[]
  /** header checksums when the merge started: a resume refuses VHDs that have changed since */
  readonly parent: { header: number }
  readonly child: { header: number }
  /** blocks merged: the union of the children's blocks */
  readonly blocks: number
  readonly startedAt: number
  readonly plan: FileMergePlan | DirectoryMergePlan
  /**
   * block checksums (absent in states of earlier versions): `digests`, the digest each VHD of the
   * chain (by name) had in the restore points' metadata when the merge was planned; `pending`,
   * set once the merged list is written beside the state (never when some VHD of the chain has no
   * checksums: the merged VHD then gets none, its sidecar and digest are dropped)
   */
  integrity?: { readonly digests: Readonly<Record<string, string>>; pending: boolean }
}

const STATE_SUFFIX = '.cd-merge.json'
const CHECKSUMS_SUFFIX = '.cd-merge.checksums'
/** Xen Orchestra's merge state name, which earlier versions of this product used too */
const XO_STATE_SUFFIX = '.merge.json'

export function dirOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i === -1 ? '.' : path.slice(0, i)
}

export function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** `<dir>/.<name>.cd-merge.json` for the oldest VHD of a chain `<dir>/<name>` */
export function mergeStatePath(parentPath: string): string {
  return `${dirOf(parentPath)}/.${baseOf(parentPath)}${STATE_SUFFIX}`
}

/** `<dir>/.<name>.cd-merge.checksums`: the merged VHD's block-checksum list, while the merge runs */
export function mergeChecksumsPath(statePath: string): string {
  return `${statePath.slice(0, -STATE_SUFFIX.length)}${CHECKSUMS_SUFFIX}`
}

/** `<dir>/.<name>.merge.json`: Xen Orchestra's name, and the one earlier versions of ours used */
export function xoMergeStatePath(parentPath: string): string {
  return `${dirOf(parentPath)}/.${baseOf(parentPath)}${XO_STATE_SUFFIX}`
}

function hasSuffix(name: string, suffix: string): boolean {
  return name.startsWith('.') && name.endsWith(suffix) && name.length > 1 + suffix.length
}

/** Xen Orchestra's merge state name (`.<name>.merge.json`), which earlier versions of ours used */
export function isXoMergeStateName(name: string): boolean {
  return hasSuffix(name, XO_STATE_SUFFIX) && !hasSuffix(name, STATE_SUFFIX)
}

/** a merge state file, ours or Xen Orchestra's */
export function isMergeStateName(name: string): boolean {
  return hasSuffix(name, STATE_SUFFIX) || isXoMergeStateName(name)
}

/** every merge state file of `dir`, ours and Xen Orchestra's, sorted */
export async function listMergeStates(handler: RemoteHandler, dir: string): Promise<string[]> {
  const names = await handler.list(dir, { ignoreMissing: true, filter: isMergeStateName })
  return names.sort().map(name => `${dir}/${name}`)
}

function isMergeState(value: unknown): value is MergeState {
  if (typeof value !== 'object' || value === null) {
    return false
  }
  const state = value as Partial<MergeState>
  return (
    state.engine === 'xo-server-continuous-delta' &&
    state.version === 1 &&
    typeof state.step === 'string' &&
    (MERGE_STEPS as readonly string[]).includes(state.step) &&
    Array.isArray(state.chain) &&
    state.chain.length >= 2 &&
    typeof state.plan === 'object' &&
    state.plan !== null
  )
}

/**
 * The state at `path`; undefined when there is none. A state this engine did not write (Xen
 * Orchestra's own merge) is reported as `foreign` so that the caller leaves it alone.
 */
export async function readMergeState(
  handler: RemoteHandler,
  path: string,
): Promise<MergeState | 'foreign' | undefined> {
  let raw: Buffer
  try {
    raw = await handler.readFile(path)
  } catch (error) {
    if (isMissing(error)) {
      return undefined
    }
    throw error
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch {
    return 'foreign'
  }
  return isMergeState(parsed) ? parsed : 'foreign'
}

/**
 * Write the state atomically. `durable: false` skips the flushes: right for the first write,
 * since until a later step is recorded a lost state only means planning the merge anew.
 */
export async function writeMergeState(handler: RemoteHandler, path: string, state: MergeState, opts: { durable?: boolean } = {}): Promise<void> {
  await replaceFileAtomically(handler, path, JSON.stringify(state), opts)
}

export async function removeMergeState(handler: RemoteHandler, path: string): Promise<void> {
  // the temporary copy too, in case an interruption left one behind
  await handler.unlink(`${dirOf(path)}/.${baseOf(path)}.tmp`).catch(() => undefined)
  if (path.endsWith(STATE_SUFFIX)) {
    const checksums = mergeChecksumsPath(path)
    await handler.unlink(`${dirOf(checksums)}/.${baseOf(checksums)}.tmp`).catch(() => undefined)
    await handler.unlink(checksums).catch(() => undefined)
  }
  await handler.unlink(path)
  await syncDir(handler, dirOf(path))
}

/** An interrupted merge of Xen Orchestra's own, found by its state file in a disk folder. */
export interface XoMergeState {
  readonly statePath: string
  /**
   * the VHDs it merges (paths from the remote's root), oldest first, from its `chain`; undefined
   * when the state does not say (older Xen Orchestra versions, unreadable): then it may touch
   * any VHD of the folder
   */
  readonly chain: string[] | undefined
}

/** resolves `relative` (as Xen Orchestra writes it, relative to the state file) in `dir` */
function resolveInDir(dir: string, relative: string): string | undefined {
  const parts = [...dir.split('/')]
  for (const part of relative.split('/')) {
    if (part === '' || part === '.') continue
    if (part === '..') {
      if (parts.length === 0) return undefined
      parts.pop()
    } else parts.push(part)
  }
  return parts.join('/')
}

/** the interrupted merges of Xen Orchestra's own in `dir` (states in its format, not ours) */
export async function listXoMergeStates(handler: RemoteHandler, dir: string): Promise<XoMergeState[]> {
  const found: XoMergeState[] = []
  for (const statePath of await listMergeStates(handler, dir)) {
    if ((await readMergeState(handler, statePath)) !== 'foreign') continue
    let chain: string[] | undefined
    try {
      const parsed = JSON.parse((await handler.readFile(statePath)).toString('utf8')) as { chain?: unknown }
      if (Array.isArray(parsed.chain) && parsed.chain.every(item => typeof item === 'string')) {
        const resolved = (parsed.chain as string[]).map(relative => resolveInDir(dir, relative))
        chain = resolved.every(path => path !== undefined) ? (resolved as string[]) : undefined
      }
    } catch {
      chain = undefined
    }
    found.push({ statePath, chain })
  }
  return found
}
