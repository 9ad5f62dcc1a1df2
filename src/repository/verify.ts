/**
 * Read-only check of a remote (or of one VM's backups). For every restore point:
 * - its metadata is valid and every VHD it names exists;
 * - every VHD of each chain: footer and header checksums, disk type, BAT, every allocated block
 *   inside the file (VHD file) or present with its full size (VHD directory), the trailing
 *   footer equal to the leading one;
 * - parent links: the parent named in the header exists and its footer UUID is the one the
 *   child expects;
 * - every block of every VHD has the sha256 recorded when the VHD was written, and its footer,
 *   header, BAT and locators too (integrity/: the sidecar's list, trusted through the digest in
 *   the metadata; recomputed when the sidecar is gone); with `sample`, a seeded random share of
 *   the blocks instead of all of them. Restore points written before block checksums are checked
 *   against their whole-VHD sha256. The report says how many blocks and bytes were read.
 * VHDs no restore point needs, VHD directories no alias points to and pending merges are
 * reported as hints. It never stops at the first problem and never writes. Each VM is checked
 * under a read lock of its chains, waiting for a backup run in progress (`chain-busy` past the
 * timeout).
 */
import { BackupError } from '../errors.js'
import { listDiskVhds } from './chain.js'
import { exists } from './remote-files.js'
import { withChainReadLock, type ReadLockOptions } from './lock.js'
import { assertSafeId, isUuid, vmDir, normalizePath, resolveSibling, vdisDir, vhdBlockPath } from './layout.js'
import { checkBlocks, checksumsOf, legacyMismatch, recordedIntegrityOf, type BlockSelection, type RecordedIntegrity } from './integrity/index.js'
import type { BackupMetadata } from './metadata.js'
import { listBackedUpVms, readVmMetadataFiles, restorePointOf } from './restore-points.js'
import { isMergeStateName } from './merge/state.js'
import type { RemoteHandler } from './remote-handler.js'
import { Constants, computeBatSize, formatUuid, isVhdAlias, openVhd, resolveVhdAlias, type Vhd } from './vhd-lib.js'

const { BLOCK_UNUSED, DISK_TYPES, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE } = Constants

export type ProblemCode =
  | 'metadata-invalid'
  | 'not-incremental'
  | 'missing-vhd'
  | 'bad-alias'
  | 'vhd-unreadable'
  | 'bad-disk-type'
  | 'bad-bat'
  | 'vhd-truncated'
  | 'footer-mismatch'
  | 'block-overlaps-metadata'
  | 'missing-block'
  | 'bad-block-size'
  | 'missing-parent'
  | 'parent-uuid-mismatch'
  | 'parent-size-mismatch'
  | 'checksum-mismatch'
  | 'block-checksum-mismatch'
  | 'checksum-unreadable'
  | 'checksums-rebuilt'
  | 'orphan-vhd'
  | 'orphan-vhd-directory'
  | 'merge-pending'
  | 'damaged-block-not-read'
  | 'chain-busy'

export interface Problem {
  readonly code: ProblemCode
  readonly severity: 'error' | 'hint'
  /** the file concerned, from the remote root */
  readonly path: string
  readonly message: string
  /** the block concerned, for a block's problem */
  readonly block?: number
}

export interface RestorePointReport {
  /** metadata path */
  readonly id: string
  readonly ok: boolean
  readonly problems: readonly Problem[]
}

export interface VerifyOptions {
  readonly vm?: string
  /** check a random share of the blocks instead of all: `percent` in (0, 100], `seed` to repeat a draw */
  readonly sample?: { readonly percent: number; readonly seed: number }
  /** told after each restore point checked: the share of the work done (0..100) and that point's id */
  readonly onProgress?: (percent: number, restorePoint: string) => void
  /** how long to wait for a backup run holding a VM's chains (default 15 minutes; then that VM is reported `chain-busy`) */
  readonly lock?: ReadLockOptions
}

export interface VerifyReport {
  /** no problem of severity error anywhere */
  readonly ok: boolean
  /** the share of blocks checked and its seed, when sampling */
  readonly sample?: { readonly percent: number; readonly seed: number }
  /** data blocks read and checked against their recorded sha256, and their bytes */
  readonly read: { readonly blocks: number; readonly bytes: number }
  readonly restorePoints: readonly RestorePointReport[]
  /** problems that belong to no restore point (orphans, pending merges) */
  readonly problems: readonly Problem[]
}

interface VhdCheck {
  readonly problems: Problem[]
  /** readable header: the parent to follow */
  readonly parent?: { readonly path: string; readonly uuid: string; readonly virtualSize: number }
  readonly uuid?: string
  readonly virtualSize?: number
}

const error = (code: ProblemCode, path: string, message: string): Problem => ({ code, severity: 'error', path, message })
const hint = (code: ProblemCode, path: string, message: string): Problem => ({ code, severity: 'hint', path, message })

function codeOf(e: unknown): string | undefined {
  return (e as { code?: string }).code
}

/** VHD file: the allocated blocks lie between the metadata and the trailing footer, which equals the leading one */
async function checkFileLayout(handler: RemoteHandler, path: string, vhd: Vhd, problems: Problem[]): Promise<void> {
  const size = await handler.getSize(path)
  const { header, fullBlockSize } = vhd
  const bat = Buffer.alloc(header.maxTableEntries * 4)
  await handler.read(path, bat, header.tableOffset)
  const metadataEnd = Math.max(FOOTER_SIZE + HEADER_SIZE, header.tableOffset + computeBatSize(header.maxTableEntries))
  let dataEnd = metadataEnd
  for (let id = 0; id < header.maxTableEntries; id++) {
    const sector = bat.readUInt32BE(id * 4)
    if (sector === BLOCK_UNUSED) continue
    const start = sector * SECTOR_SIZE
    if (start < metadataEnd) {
      problems.push(error('block-overlaps-metadata', path, `block ${id} at byte ${start} overlaps the header or BAT`))
    }
    dataEnd = Math.max(dataEnd, start + fullBlockSize)
    if (start + fullBlockSize > size - FOOTER_SIZE) {
      problems.push(error('vhd-truncated', path, `block ${id} (bytes ${start}-${start + fullBlockSize}) lies beyond the end of the ${size}-byte file`))
    }
  }
  const first = Buffer.alloc(FOOTER_SIZE)
  const last = Buffer.alloc(FOOTER_SIZE)
  await handler.read(path, first, 0)
  if (size >= FOOTER_SIZE) await handler.read(path, last, size - FOOTER_SIZE)
  if (!first.equals(last) && !problems.some(p => p.code === 'vhd-truncated')) {
    problems.push(error(dataEnd + FOOTER_SIZE > size ? 'vhd-truncated' : 'footer-mismatch', path, 'the trailing footer differs from the leading one'))
  }
}

/** VHD directory: every allocated block is a chunk of the full block size */
async function checkDirectoryLayout(handler: RemoteHandler, path: string, dataPath: string, vhd: Vhd, problems: Problem[]): Promise<void> {
  const compressed = await exists(handler, `${dataPath}/chunk-filters.json`)
  for (let id = 0; id < vhd.header.maxTableEntries; id++) {
    if (!vhd.containsBlock(id)) continue
    const block = vhdBlockPath(dataPath, id)
    try {
      // an encrypted file's size on disk is not its data's: the block is read whole (decrypted)
      const size = handler.isEncrypted === true ? (await handler.readFile(block)).length : await handler.getSize(block)
      if (!compressed && size !== vhd.fullBlockSize) {
        problems.push(error('bad-block-size', path, `block ${id} (${block}) has ${size} bytes, expected ${vhd.fullBlockSize}`))
      }
    } catch (e) {
      if (codeOf(e) !== 'ENOENT') throw e
      problems.push(error('missing-block', path, `block ${id} is allocated but ${block} is missing`))
    }
  }
}

/** footer, header, BAT and layout of one VHD, without its parent */
async function checkOneVhd(handler: RemoteHandler, path: string): Promise<VhdCheck> {
  const problems: Problem[] = []
  let dataPath: string | undefined
  if (isVhdAlias(path)) {
    try {
      dataPath = normalizePath(await resolveVhdAlias(handler, path))
    } catch (e) {
      const missing = codeOf(e) === 'ENOENT'
      return { problems: [error(missing ? 'missing-vhd' : 'bad-alias', path, missing ? 'the VHD alias is missing' : `unreadable VHD alias: ${(e as Error).message}`)] }
    }
  }
  let disposable
  try {
    disposable = await openVhd(handler, path, { flags: 'r', checkSecondFooter: false })
  } catch (e) {
    if (codeOf(e) === 'ENOENT') {
      return { problems: [error('missing-vhd', path, dataPath === undefined ? 'the VHD is missing' : `the VHD directory ${dataPath} is missing`)] }
    }
    const size = dataPath === undefined ? await handler.getSize(path).catch(() => -1) : -1
    const truncated = size >= 0 && size < FOOTER_SIZE + HEADER_SIZE
    return { problems: [error(truncated ? 'vhd-truncated' : 'vhd-unreadable', path, `footer or header unreadable: ${(e as Error).message}`)] }
  }
  try {
    const vhd = disposable.value
    const { footer, header } = vhd
    const check: VhdCheck = { problems, uuid: formatUuid(footer.uuid), virtualSize: footer.currentSize }
    if (![DISK_TYPES.DYNAMIC, DISK_TYPES.DIFFERENCING].includes(footer.diskType)) {
      problems.push(error('bad-disk-type', path, `disk type ${footer.diskType} is neither dynamic (3) nor differencing (4)`))
    }
    try {
      await vhd.readBlockAllocationTable()
    } catch (e) {
      problems.push(error('bad-bat', path, `block allocation table unreadable: ${(e as Error).message}`))
      return check
    }
    if (dataPath === undefined) await checkFileLayout(handler, path, vhd, problems)
    else await checkDirectoryLayout(handler, path, dataPath, vhd, problems)
    if (footer.diskType !== DISK_TYPES.DIFFERENCING) return check
    return {
      ...check,
      parent: { path: resolveSibling(path, header.parentUnicodeName), uuid: formatUuid(header.parentUuid), virtualSize: footer.currentSize },
    }
  } finally {
    await disposable.dispose()
  }
}

class VmVerifier {
  readonly #handler: RemoteHandler
  readonly #vm: string
  readonly #checks = new Map<string, Promise<VhdCheck>>()
  readonly #checksums = new Map<string, Promise<Problem[]>>()
  readonly #metadata = new Map<string, { metadata: BackupMetadata } | { problem: Problem }>()
  /** what every readable restore point of the VM recorded about its VHDs */
  #recorded: RecordedIntegrity = { digests: new Map(), legacy: new Map() }
  readonly #selection: BlockSelection
  readonly read = { blocks: 0, bytes: 0 }
  /** every VHD some restore point's chain goes through */
  readonly used = new Set<string>()

  constructor(handler: RemoteHandler, vm: string, selection: BlockSelection) {
    this.#handler = handler
    this.#vm = vm
    this.#selection = selection
  }

  #check(path: string): Promise<VhdCheck> {
    let check = this.#checks.get(path)
    if (check === undefined) {
      check = checkOneVhd(this.#handler, path).catch(e => ({ problems: [error('vhd-unreadable', path, (e as Error).message)] }))
      this.#checks.set(path, check)
    }
    return check
  }

  /** problems of the chain ending at `path`, and the VHDs it goes through (newest first) */
  async chainProblems(path: string): Promise<{ problems: Problem[]; chain: string[] }> {
    const problems: Problem[] = []
    const seen = new Set<string>()
    let current: string | undefined = path
    while (current !== undefined && !seen.has(current)) {
      seen.add(current)
      this.used.add(current)
      const check: VhdCheck = await this.#check(current)
      problems.push(...check.problems)
      const parent = check.parent
      if (parent === undefined) break
      const parentCheck = await this.#check(parent.path)
      if (parentCheck.problems.some(p => p.code === 'missing-vhd')) {
        problems.push(error('missing-parent', current, `its parent ${parent.path} is missing`))
        break
      }
      if (parentCheck.uuid !== undefined && parentCheck.uuid !== parent.uuid) {
        problems.push(error('parent-uuid-mismatch', current, `expects parent UUID ${parent.uuid}, ${parent.path} has ${parentCheck.uuid}`))
      }
      if (parentCheck.virtualSize !== undefined && parentCheck.virtualSize !== parent.virtualSize) {
        problems.push(hint('parent-size-mismatch', current, `virtual size ${parent.virtualSize} differs from its parent's ${parentCheck.virtualSize}`))
      }
      current = parent.path
    }
    return { problems, chain: [...seen] }
  }

  /** a VHD's blocks and structures against its recorded checksums, checked once whichever restore point's chain goes through it */
  #checksumProblems(path: string): Promise<Problem[]> {
    let result = this.#checksums.get(path)
    if (result === undefined) {
      result = this.#checkChecksums(path).catch(e => [error('checksum-unreadable', path, `cannot read the VHD to check its checksums: ${(e as Error).message}`)])
      this.#checksums.set(path, result)
    }
    return result
  }

  async #checkChecksums(path: string): Promise<Problem[]> {
    const integrity = await checksumsOf(this.#handler, path, this.#recorded, {
      onBlock: (_id, bytes) => {
        this.read.blocks++
        this.read.bytes += bytes
      },
    })
    switch (integrity.status) {
      case 'unrecorded':
        return []
      case 'legacy': {
        const why = await legacyMismatch(this.#handler, path, integrity.recorded)
        return why === undefined ? [] : [error('checksum-mismatch', path, why)]
      }
      case 'damaged': {
        const problems = [error('checksum-mismatch', path, integrity.reason)]
        if (integrity.list !== undefined) problems.push(...(await this.#blockProblems(path, integrity.list)))
        return problems
      }
      case 'listed': {
        // a list rebuilt after a merge is the expected state until the merge records its own: no hint
        const problems = integrity.source === 'recomputed' ? [hint('checksums-rebuilt', path, integrity.note ?? integrity.source)] : []
        // recomputed with the recorded digest: every block was just read and matched
        if (integrity.source !== 'recomputed') problems.push(...(await this.#blockProblems(path, integrity.list)))
        return problems
      }
    }
  }

  async #blockProblems(path: string, list: Parameters<typeof checkBlocks>[2]): Promise<Problem[]> {
    const check = await checkBlocks(this.#handler, path, list, this.#selection)
    this.read.blocks += check.blocksRead
    this.read.bytes += check.bytesRead
    return check.damaged.map(block => ({ ...error('block-checksum-mismatch', path, `block ${block.id}: ${block.reason}`), block: block.id }))
  }

  readonly #allocated = new Map<string, Promise<ReadonlySet<number>>>()

  /** the blocks the VHD at `path` holds (empty when it cannot be read: its own problems say why) */
  #blocksOf(path: string): Promise<ReadonlySet<number>> {
    let blocks = this.#allocated.get(path)
    if (blocks === undefined) {
      blocks = (async () => {
        const disposable = await openVhd(this.#handler, path, { flags: 'r', checkSecondFooter: false })
        try {
          const vhd = disposable.value
          await vhd.readBlockAllocationTable()
          const ids = new Set<number>()
          for (let id = 0; id < vhd.header.maxTableEntries; id++) if (vhd.containsBlock(id)) ids.add(id)
          return ids
        } finally {
          await disposable.dispose()
        }
      })().catch(() => new Set<number>())
      this.#allocated.set(path, blocks)
    }
    return blocks
  }

  /**
   * A damaged block of a VHD counts for a restore point only when the point reads it: when no VHD
   * newer in its chain (`newer`) holds that block (a restore reads each block from its newest
   * holder). Otherwise it is a hint.
   */
  async #asRead(problems: readonly Problem[], newer: readonly string[]): Promise<Problem[]> {
    const out: Problem[] = []
    for (const p of problems) {
      if (p.code !== 'block-checksum-mismatch' || p.block === undefined) {
        out.push(p)
        continue
      }
      let over: string | undefined
      for (const path of newer) if ((await this.#blocksOf(path)).has(p.block)) over = path
      out.push(over === undefined ? p : { ...hint('damaged-block-not-read', p.path, `${p.message}; this restore point reads block ${p.block} from ${over}`), block: p.block })
    }
    return out
  }

  async restorePoint(id: string): Promise<RestorePointReport> {
    const read = this.#metadata.get(id)
    if (read === undefined || 'problem' in read) {
      const problem = read?.problem ?? error('metadata-invalid', id, 'unreadable')
      return { id, ok: problem.severity !== 'error', problems: [problem] }
    }
    const problems: Problem[] = []
    const add = (found: readonly Problem[]) => {
      for (const p of found) {
        if (!problems.some(q => q.code === p.code && q.path === p.path && q.message === p.message)) problems.push(p)
      }
    }
    let point
    try {
      point = restorePointOf(id, read.metadata)
    } catch (e) {
      return { id, ok: false, problems: [error('metadata-invalid', id, (e as Error).message)] }
    }
    for (const disk of point.disks) {
      const { problems: chainProblems, chain } = await this.chainProblems(disk.vhd)
      add(chainProblems)
      // chain: newest first
      for (const [i, vhd] of chain.entries()) {
        if (chainProblems.some(p => p.path === vhd && p.severity === 'error')) continue
        add(await this.#asRead(await this.#checksumProblems(vhd), chain.slice(0, i)))
      }
    }
    return { id, ok: !problems.some(p => p.severity === 'error'), problems }
  }

  /** reads every metadata file of the VM and the checksums they record */
  async load(): Promise<string[]> {
    const ids: string[] = []
    const readable: BackupMetadata[] = []
    for (const file of await readVmMetadataFiles(this.#handler, this.#vm)) {
      ids.push(file.path)
      if (file.status === 'usable') {
        this.#metadata.set(file.path, { metadata: file.metadata })
        readable.push(file.metadata)
      } else {
        const problem =
          file.status === 'foreign'
            ? hint('not-incremental', file.path, `not checked, left alone: ${file.reason}`)
            : error('metadata-invalid', file.path, `${file.reason}; the restore point cannot be restored, retention does not count it and leaves it as it is`)
        this.#metadata.set(file.path, { problem })
      }
    }
    this.#recorded = recordedIntegrityOf(this.#vm, readable)
    return ids
  }

  /** VHDs no restore point uses, directories no alias points to, pending merges */
  async leftovers(): Promise<Problem[]> {
    const problems: Problem[] = []
    const vdis = vdisDir(this.#vm)
    for (const job of await this.#handler.list(vdis, { ignoreMissing: true })) {
      for (const vdi of (await this.#handler.list(`${vdis}/${job}`, { ignoreMissing: true }).catch(() => [] as string[])).filter(isUuid)) {
        const dir = `${vdis}/${job}/${vdi}`
        const vhds = await listDiskVhds(this.#handler, dir)
        const targets = new Set<string>()
        for (const vhd of vhds) {
          if (!this.used.has(vhd)) problems.push(hint('orphan-vhd', vhd, 'no restore point uses this VHD; retention removes it'))
          if (isVhdAlias(vhd)) {
            const target = await resolveVhdAlias(this.#handler, vhd).catch(() => undefined)
            if (target !== undefined) targets.add(normalizePath(target))
          }
        }
        const names = await this.#handler.list(dir, { ignoreMissing: true })
        for (const name of names.filter(isMergeStateName)) {
          problems.push(hint('merge-pending', `${dir}/${name}`, 'an interrupted merge; the next backup run or a restore of this disk finishes it'))
        }
        if (names.includes('data')) {
          for (const name of await this.#handler.list(`${dir}/data`, { ignoreMissing: true })) {
            if (!targets.has(`${dir}/data/${name}`)) {
              problems.push(hint('orphan-vhd-directory', `${dir}/data/${name}`, 'no alias points to this VHD directory; retention removes it'))
            }
          }
        }
      }
    }
    return problems
  }
}

/** checks every restore point of the remote, or of `opts.vm`; every block, or `opts.sample`'s share */
export async function verifyRemote(handler: RemoteHandler, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const { sample } = opts
  if (sample !== undefined && !(sample.percent > 0 && sample.percent <= 100 && Number.isInteger(sample.seed))) {
    throw new BackupError('INVALID_PARAMETER', `verify sample: the share must be in (0, 100] % and the seed an integer, got ${sample.percent} % and ${sample.seed}`)
  }
  const selection: BlockSelection = sample === undefined ? { kind: 'all' } : { kind: 'share', ...sample }
  const vms = opts.vm === undefined ? await listBackedUpVms(handler) : [assertSafeId('vm', opts.vm)]
  const restorePoints: RestorePointReport[] = []
  const problems: Problem[] = []
  const read = { blocks: 0, bytes: 0 }
  for (const [vmIndex, vm] of vms.entries()) {
    const verifier = new VmVerifier(handler, vm, selection)
    try {
      // a VM's chains are checked as no backup run or merge is changing them (it waits for one)
      await withChainReadLock(
        handler,
        vm,
        async () => {
          const ids = await verifier.load()
          for (const [index, id] of ids.entries()) {
            restorePoints.push(await verifier.restorePoint(id))
            // each VM an equal share; within it, each restore point
            opts.onProgress?.((100 * (vmIndex + (index + 1) / ids.length)) / vms.length, id)
          }
          problems.push(...(await verifier.leftovers()))
        },
        opts.lock ?? {},
      )
    } catch (e) {
      if (!(e instanceof BackupError && e.code === 'CHAIN_LOCKED')) throw e
      problems.push(error('chain-busy', vmDir(vm), `not checked: ${e.message}`))
    }
    read.blocks += verifier.read.blocks
    read.bytes += verifier.read.bytes
  }
  const ok = !restorePoints.some(p => !p.ok) && !problems.some(p => p.severity === 'error')
  return { ok, ...(sample === undefined ? {} : { sample }), read, restorePoints, problems }
}
