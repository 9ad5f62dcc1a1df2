/**
 * The block-checksum list of one VHD: a sha256 of each of its structures (footer, header, block
 * allocation table, parent locators) and of every allocated data block, each as stored (a block
 * is its sector bitmap followed by its data, `fullBlockSize` bytes, as `Vhd.readBlock` returns it).
 *
 * Serialized form (the sidecar file, big-endian; see docs/remote-format.md):
 *
 *     0    8   magic "CDBSUM01"
 *     8    4   block size (data bytes per block, e.g. 2 MiB)
 *     12   4   maxTableEntries
 *     16   4   n, the number of allocated blocks
 *     20   4   locator mask: bit i set when parent locator entry i has data
 *     24   32  sha256 of the footer (the 512 bytes at the start of a VHD file / the `footer` chunk)
 *     56   32  sha256 of the header (1024 bytes / the `header` chunk)
 *     88   32  sha256 of the BAT as stored (`batSize` bytes at `tableOffset` / the `bat` chunk)
 *     120  256 8 × sha256 of parent locator data (`readParentLocator(i).data`), zeros when absent
 *     376  2   length p of the parent's name, then p bytes of it (UTF-8, relative, '' for a full)
 *     …    36n n × (u32 block id, sha256 of the block), ids ascending
 *     end  32  digest: sha256 of every byte before it
 *
 * The digest identifies the whole list: it is what the restore point's metadata records
 * (`continuousDelta.blockChecksums`), so a sidecar is trusted when its digest is the recorded one,
 * and a list recomputed from the VHD is trusted when it serializes to that same digest.
 */
import { createHash } from 'node:crypto'

export const BLOCK_CHECKSUMS_MAGIC = 'CDBSUM01'
const HASH = 32
const LOCATORS = 8
const FIXED = 8 + 4 * 4 + HASH * 3 + HASH * LOCATORS
const ENTRY = 4 + HASH

/** sha256 of `buffer` (32 raw bytes) */
export function sha256(buffer: Buffer): Buffer {
  return createHash('sha256').update(buffer).digest()
}

export type StructureName = 'footer' | 'header' | 'bat'

export interface Structures {
  readonly footer: Buffer
  readonly header: Buffer
  readonly bat: Buffer
  /** entry i: sha256 of locator i's data, undefined when the entry has none */
  readonly locators: readonly (Buffer | undefined)[]
}

export class BlockChecksumsFormatError extends Error {
  override readonly name = 'BlockChecksumsFormatError'
}

export class BlockChecksums {
  readonly blockSize: number
  readonly maxTableEntries: number
  /** relative name of the parent VHD (as in the header), '' for a full */
  readonly parent: string
  readonly structures: Structures
  readonly #blocks: ReadonlyMap<number, Buffer>
  #digest: Buffer | undefined
  #serialized: Buffer | undefined

  constructor(init: { blockSize: number; maxTableEntries: number; parent: string; structures: Structures; blocks: ReadonlyMap<number, Buffer> }) {
    this.blockSize = init.blockSize
    this.maxTableEntries = init.maxTableEntries
    this.parent = init.parent
    this.structures = init.structures
    this.#blocks = init.blocks
  }

  /** sha256 recorded for block `id`, undefined when the VHD does not hold that block */
  forBlock(id: number): Buffer | undefined {
    return this.#blocks.get(id)
  }

  hasBlock(id: number): boolean {
    return this.#blocks.has(id)
  }

  get blockCount(): number {
    return this.#blocks.size
  }

  /** allocated block ids, ascending */
  blockIds(): number[] {
    return [...this.#blocks.keys()].sort((a, b) => a - b)
  }

  /** whether `buffer` (bitmap + data, as stored) is block `id` as recorded */
  verifyBlock(id: number, buffer: Buffer): boolean {
    const recorded = this.#blocks.get(id)
    return recorded !== undefined && recorded.equals(sha256(buffer))
  }

  /** the digest (hex) the metadata records for this list */
  get digest(): string {
    this.serialize()
    return this.#digest!.toString('hex')
  }

  serialize(): Buffer {
    if (this.#serialized !== undefined) return this.#serialized
    const parent = Buffer.from(this.parent, 'utf8')
    if (parent.length > 0xffff) throw new BlockChecksumsFormatError('parent name too long')
    const ids = this.blockIds()
    const body = Buffer.alloc(FIXED + 2 + parent.length + ENTRY * ids.length)
    body.write(BLOCK_CHECKSUMS_MAGIC, 0, 'latin1')
    body.writeUInt32BE(this.blockSize, 8)
    body.writeUInt32BE(this.maxTableEntries, 12)
    body.writeUInt32BE(ids.length, 16)
    let mask = 0
    const { footer, header, bat, locators } = this.structures
    footer.copy(body, 24)
    header.copy(body, 56)
    bat.copy(body, 88)
    for (let i = 0; i < LOCATORS; i++) {
      const sum = locators[i]
      if (sum === undefined) continue
      mask |= 1 << i
      sum.copy(body, 120 + HASH * i)
    }
    body.writeUInt32BE(mask, 20)
    let offset = FIXED
    body.writeUInt16BE(parent.length, offset)
    parent.copy(body, offset + 2)
    offset += 2 + parent.length
    for (const id of ids) {
      body.writeUInt32BE(id, offset)
      this.#blocks.get(id)!.copy(body, offset + 4)
      offset += ENTRY
    }
    this.#digest = sha256(body)
    this.#serialized = Buffer.concat([body, this.#digest])
    return this.#serialized
  }

  /** parses a serialized list; throws BlockChecksumsFormatError when it is not one or its own digest does not match */
  static parse(buffer: Buffer): BlockChecksums {
    const fail = (why: string): never => {
      throw new BlockChecksumsFormatError(`not a block-checksum list: ${why}`)
    }
    if (buffer.length < FIXED + 2 + HASH) fail(`${buffer.length} bytes is too short`)
    if (buffer.toString('latin1', 0, 8) !== BLOCK_CHECKSUMS_MAGIC) fail('bad magic')
    const body = buffer.subarray(0, buffer.length - HASH)
    const digest = buffer.subarray(buffer.length - HASH)
    if (!sha256(body).equals(digest)) fail('its digest does not match its content (damaged)')
    const n = body.readUInt32BE(16)
    const mask = body.readUInt32BE(20)
    const parentLength = body.readUInt16BE(FIXED)
    if (body.length !== FIXED + 2 + parentLength + ENTRY * n) fail('its length does not match its block count')
    const copy = (offset: number) => Buffer.from(body.subarray(offset, offset + HASH))
    const locators: (Buffer | undefined)[] = []
    for (let i = 0; i < LOCATORS; i++) locators.push((mask & (1 << i)) !== 0 ? copy(120 + HASH * i) : undefined)
    const blocks = new Map<number, Buffer>()
    let offset = FIXED + 2 + parentLength
    let previous = -1
    const maxTableEntries = body.readUInt32BE(12)
    for (let i = 0; i < n; i++, offset += ENTRY) {
      const id = body.readUInt32BE(offset)
      if (id <= previous || id >= maxTableEntries) fail(`block id ${id} out of order or range`)
      previous = id
      blocks.set(id, copy(offset + 4))
    }
    const list = new BlockChecksums({
      blockSize: body.readUInt32BE(8),
      maxTableEntries,
      parent: body.toString('utf8', FIXED + 2, FIXED + 2 + parentLength),
      structures: { footer: copy(24), header: copy(56), bat: copy(88), locators },
      blocks,
    })
    list.#digest = Buffer.from(digest)
    list.#serialized = Buffer.from(buffer)
    return list
  }

  /**
   * This list with blocks of `ancestors` (nearest first) added where it holds none, and the
   * structures of the VHD they now form: what a merge that folds the ancestors into this VHD
   * (child blocks win) must produce. `parent` is the merged VHD's parent name.
   */
  overlayOnto(ancestors: readonly BlockChecksums[], result: { structures: Structures; parent: string; maxTableEntries?: number }): BlockChecksums {
    const blocks = new Map<number, Buffer>()
    for (const list of [...ancestors].reverse()) for (const id of list.#blocks.keys()) blocks.set(id, list.#blocks.get(id)!)
    for (const [id, sum] of this.#blocks) blocks.set(id, sum)
    return new BlockChecksums({
      blockSize: this.blockSize,
      maxTableEntries: result.maxTableEntries ?? this.maxTableEntries,
      parent: result.parent,
      structures: result.structures,
      blocks,
    })
  }

  /** the same blocks with other structures (a VHD whose footer, header or BAT was rewritten, its blocks untouched) */
  withStructures(structures: Structures, parent: string = this.parent, maxTableEntries: number = this.maxTableEntries): BlockChecksums {
    return new BlockChecksums({ blockSize: this.blockSize, maxTableEntries, parent, structures, blocks: this.#blocks })
  }

  /** which structures differ from `actual` */
  structureMismatches(actual: Structures): string[] {
    const differ: string[] = []
    for (const name of ['footer', 'header', 'bat'] as const) {
      if (!this.structures[name].equals(actual[name])) differ.push(name === 'bat' ? 'block allocation table' : name)
    }
    for (let i = 0; i < LOCATORS; i++) {
      const a = this.structures.locators[i]
      const b = actual.locators[i]
      if ((a === undefined) !== (b === undefined) || (a !== undefined && b !== undefined && !a.equals(b))) differ.push(`parent locator ${i}`)
    }
    return differ
  }
}

/** builds a list as a VHD streams by: structures once, then each block as it passes */
export class BlockChecksumsBuilder {
  readonly #blocks = new Map<number, Buffer>()
  #structures: Structures | undefined
  readonly blockSize: number
  readonly maxTableEntries: number
  readonly parent: string

  constructor(init: { blockSize: number; maxTableEntries: number; parent: string }) {
    this.blockSize = init.blockSize
    this.maxTableEntries = init.maxTableEntries
    this.parent = init.parent
  }

  /** raw structures as stored; locator i: its data, undefined when none */
  setStructures(raw: { footer: Buffer; header: Buffer; bat: Buffer; locators: readonly (Buffer | undefined)[] }): void {
    this.#structures = hashStructures(raw)
  }

  /** structures already hashed (a merge knows the parent's locators only by their sha256) */
  setHashedStructures(structures: Structures): void {
    this.#structures = structures
  }

  /** `buffer`: the block as stored (bitmap + data) */
  addBlock(id: number, buffer: Buffer): void {
    this.#blocks.set(id, sha256(buffer))
  }

  /** a block whose sha256 is already known (carried over by a merge) */
  addBlockChecksum(id: number, sum: Buffer): void {
    this.#blocks.set(id, sum)
  }

  build(): BlockChecksums {
    if (this.#structures === undefined) throw new Error('block checksums: structures not set')
    return new BlockChecksums({
      blockSize: this.blockSize,
      maxTableEntries: this.maxTableEntries,
      parent: this.parent,
      structures: this.#structures,
      blocks: this.#blocks,
    })
  }
}

export function hashStructures(raw: { footer: Buffer; header: Buffer; bat: Buffer; locators: readonly (Buffer | undefined)[] }): Structures {
  const locators: (Buffer | undefined)[] = []
  for (let i = 0; i < LOCATORS; i++) {
    const data = raw.locators[i]
    locators.push(data === undefined || data.length === 0 ? undefined : sha256(data))
  }
  return { footer: sha256(raw.footer), header: sha256(raw.header), bat: sha256(raw.bat), locators }
}
