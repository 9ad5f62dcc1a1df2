/**
 * The part of `vhd-lib` (untyped CommonJS) that the product uses, behind a narrow declared
 * interface: header and footer structures and their checksums, the VHD classes (file,
 * directory, synthetic chain), alias helpers, the stream parser, and UUID formatting. Everything
 * else imports vhd-lib through this module only.
 *
 * The library's sub-modules are exposed both whole (`vhdLib`, `vhdStructs`, `vhdUtils`,
 * `vhdAliases`, `vhdCreate`, `vhdMerge`) and as the functions and constants taken from them.
 */
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import type { RemoteHandler } from './remote-handler.js'

const require = createRequire(import.meta.url)

export interface DiskGeometry {
  cylinders: number
  heads: number
  sectorsPerTrackCylinder: number
}

export interface VhdFooter {
  cookie: string
  features: number
  fileFormatVersion: number
  dataOffset: number | undefined
  timestamp: number
  creatorApplication: string
  creatorVersion: number
  creatorHostOs: number
  originalSize: number
  currentSize: number
  diskGeometry: DiskGeometry
  diskType: number
  checksum: number
  uuid: Buffer
  saved: string
  hidden: string
  reserved: string
}

export interface ParentLocatorEntry {
  platformCode: number
  platformDataSpace: number
  platformDataLength: number
  reserved: number
  platformDataOffset: number
}

export interface VhdHeader {
  cookie: string
  dataOffset: number | undefined
  tableOffset: number
  headerVersion: number
  maxTableEntries: number
  blockSize: number
  checksum: number
  parentUuid: Buffer
  parentTimestamp: number
  reserved1: number
  parentUnicodeName: string
  parentLocatorEntry: ParentLocatorEntry[]
  reserved2: string
}

export interface Struct<T> {
  readonly size: number
  pack(value: Partial<T>): Buffer
  unpack(buffer: Buffer): T
}

interface StructsModule {
  fuFooter: Struct<VhdFooter>
  fuHeader: Struct<VhdHeader>
  checksumStruct(buffer: Buffer, struct: Struct<VhdFooter> | Struct<VhdHeader>): number
}

interface UtilsModule {
  unpackFooter(buffer: Buffer): VhdFooter
  unpackHeader(buffer: Buffer, footer?: VhdFooter): VhdHeader
  computeBatSize(entries: number): number
  computeFullBlockSize(blockSize: number): number
  computeSectorOfBitmap(blockSize: number): number
}

interface CreateFooterHeaderModule {
  createFooter(size: number, timestamp: number, geometry: DiskGeometry, dataOffset: number, diskType?: number): Buffer
  createHeader(maxTableEntries: number, tableOffset?: number, blockSize?: number): Buffer
}

export interface VhdBlock {
  readonly id: number
  readonly bitmap: Buffer
  readonly data: Buffer
  readonly buffer: Buffer
}

/** a stream produced by vhd-lib, with its exact length in bytes */
export type SizedReadable = Readable & { length: number }

/** What is used of `VhdFile`, `VhdDirectory` and `VhdSynthetic` instances (writes need `flags: 'r+'` or a new VHD). */
export interface Vhd {
  footer: VhdFooter
  header: VhdHeader
  readonly bitmapSize: number
  readonly fullBlockSize: number
  readonly batSize: number
  readonly compressionType?: string | undefined
  readBlockAllocationTable(): Promise<void>
  containsBlock(blockId: number): boolean
  readBlock(blockId: number): Promise<VhdBlock>
  readParentLocator(id: number): Promise<{ platformCode: number; id: number; data: Buffer }>
  writeEntireBlock(block: { id: number; buffer: Buffer }): Promise<void>
  writeBlockAllocationTable(): Promise<void>
  writeHeader(): Promise<void>
  writeFooter(onlyEndFooter?: boolean): Promise<void>
  writeParentLocator(entry: { id: number; platformCode: number; data: Buffer }): Promise<void>
  setUniqueParentLocator(fileName: string): Promise<void>
  stream(opts?: { onProgress?(done: number, total: number): void }): SizedReadable
  rawContent(): SizedReadable
}

export interface VhdDirectoryInstance extends Vhd {
  getFullBlockPath(blockId: number): string
  setAllocatedBlocks(blockIds: Iterable<number>): void
}

export interface DisposableValue<T> {
  readonly value: T
  dispose(): Promise<void> | void
}

interface VhdClass<T extends Vhd> {
  open(handler: RemoteHandler, path: string, opts?: { flags?: string; checkSecondFooter?: boolean }): Promise<DisposableValue<T>>
  create(handler: RemoteHandler, path: string, opts?: { flags?: string; compression?: string | undefined }): Promise<DisposableValue<T>>
}

/** a parsed item of a VHD stream, in stream order */
export type VhdStreamItem =
  | { type: 'footer'; footer: VhdFooter; offset: number }
  | { type: 'header'; header: VhdHeader; offset: number }
  | { type: 'parentLocator'; id: string; offset: number; size: number; buffer: Buffer }
  | { type: 'bat'; offset: number; size: number; buffer: Buffer; blockCount: number }
  | { type: 'block'; id: number; offset: number; size: number; bitmap: Buffer; data: Buffer; buffer: Buffer }

interface VhdLibModule {
  openVhd(handler: RemoteHandler, path: string, opts?: { flags?: string; checkSecondFooter?: boolean }): Promise<DisposableValue<Vhd>>
  chainVhd(parentHandler: RemoteHandler, parentPath: string, childHandler: RemoteHandler, childPath: string, force?: boolean): Promise<void>
  VhdFile: VhdClass<Vhd>
  VhdDirectory: VhdClass<VhdDirectoryInstance>
  VhdSynthetic: {
    /** `vhds`: the chain, oldest (the full) first, opened; call `readHeaderAndFooter()` before use */
    new (vhds: readonly Vhd[]): Vhd & { readHeaderAndFooter(): Promise<void> }
    /** `paths`: the chain, oldest (the full) first */
    open(handler: RemoteHandler, paths: readonly string[], opts?: { flags?: string }): Promise<DisposableValue<Vhd>>
    fromVhdChain(handler: RemoteHandler, childPath: string): Promise<DisposableValue<Vhd>>
  }
  VhdAbstract: {
    createAlias(handler: RemoteHandler, aliasPath: string, targetPath: string): Promise<void>
    unlink(handler: RemoteHandler, path: string): Promise<void>
  }
  Constants: {
    BLOCK_UNUSED: number
    FOOTER_SIZE: number
    HEADER_SIZE: number
    SECTOR_SIZE: number
    DEFAULT_BLOCK_SIZE: number
    DISK_TYPES: { FIXED: number; DYNAMIC: number; DIFFERENCING: number }
    PARENT_LOCATOR_ENTRIES: number
    PLATFORMS: { NONE: number; W2KU: number; W2RU: number }
  }
}

interface AliasesModule {
  isVhdAlias(path: string): boolean
  resolveVhdAlias(handler: RemoteHandler, path: string): Promise<string>
}

interface MergeModule {
  mergeVhdChain(
    handler: RemoteHandler,
    chain: string[],
    opts?: { onProgress?(progress: { total: number; done: number }): void; removeUnused?: boolean; mergeBlockConcurrency?: number },
  ): Promise<{ mergedDataSize: number; finalVhdSize: number }>
}

interface StreamParserModule {
  parseVhdStream(stream: Readable): AsyncGenerator<VhdStreamItem>
}

export const vhdLib = require('vhd-lib') as VhdLibModule
export const vhdMerge = require('vhd-lib/merge.js') as MergeModule
export const vhdStructs = require('vhd-lib/_structs.js') as StructsModule
export const vhdUtils = require('vhd-lib/Vhd/_utils.js') as UtilsModule
export const vhdAliases = require('vhd-lib/aliases.js') as AliasesModule
export const vhdCreate = require('vhd-lib/_createFooterHeader.js') as CreateFooterHeaderModule
export const computeGeometryForSize = require('vhd-lib/_computeGeometryForSize.js') as (
  size: number,
) => DiskGeometry & { actualSize: number }
const streamParser = require('vhd-lib/parseVhdStream.js') as StreamParserModule

export const { openVhd, VhdFile, VhdDirectory, VhdSynthetic, VhdAbstract, Constants } = vhdLib
export const { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, DEFAULT_BLOCK_SIZE, DISK_TYPES, PLATFORMS } = Constants
export const { fuFooter, fuHeader, checksumStruct } = vhdStructs
export const { unpackFooter, unpackHeader, computeBatSize, computeFullBlockSize } = vhdUtils
export const { isVhdAlias, resolveVhdAlias } = vhdAliases
export const { parseVhdStream } = streamParser

/** the footer, packed with its checksum computed */
export function packFooter(footer: VhdFooter): Buffer {
  const raw = fuFooter.pack(footer)
  checksumStruct(raw, fuFooter)
  return raw
}

/** the header, packed with its checksum computed */
export function packHeader(header: VhdHeader): Buffer {
  const raw = fuHeader.pack(header)
  checksumStruct(raw, fuHeader)
  return raw
}

/** VHD UUIDs are 16 raw bytes; the product speaks of them as canonical strings */
export function formatUuid(raw: Buffer): string {
  const hex = raw.toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`
}

export function parseUuid(uuid: string): Buffer {
  const hex = uuid.replace(/-/g, '')
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) {
    throw new TypeError(`not a UUID: ${uuid}`)
  }
  return Buffer.from(hex, 'hex')
}
