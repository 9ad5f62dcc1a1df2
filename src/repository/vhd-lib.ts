/**
 * Typed bindings for the parts of `vhd-lib` (untyped CommonJS) that the merge engine and its
 * fixtures use: header/footer structures, their checksums, the VHD classes and the alias helpers.
 */
import { createRequire } from 'node:module'
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
  id: number
  bitmap: Buffer
  data: Buffer
  buffer: Buffer
}

/** What is used of `VhdFile`, `VhdDirectory` and `VhdSynthetic` instances. */
export interface Vhd {
  footer: VhdFooter
  header: VhdHeader
  readonly bitmapSize: number
  readonly fullBlockSize: number
  readonly compressionType?: string | undefined
  readBlockAllocationTable(): Promise<void>
  containsBlock(blockId: number): boolean
  readBlock(blockId: number): Promise<VhdBlock>
  writeEntireBlock(block: { id: number; buffer: Buffer }): Promise<void>
  writeBlockAllocationTable(): Promise<void>
  writeHeader(): Promise<void>
  writeFooter(onlyEndFooter?: boolean): Promise<void>
  setUniqueParentLocator(fileName: string): Promise<void>
  readParentLocator(id: number): Promise<{ platformCode: number; id: number; data: Buffer }>
  rawContent(): NodeJS.ReadableStream & { length: number }
  stream(): NodeJS.ReadableStream & { length: number }
}

export interface VhdDirectoryInstance extends Vhd {
  getFullBlockPath(blockId: number): string
  setAllocatedBlocks(blockIds: Iterable<number>): void
}

export interface DisposableValue<T> {
  value: T
  dispose(): Promise<void> | void
}

interface VhdClass<T extends Vhd> {
  open(handler: RemoteHandler, path: string, opts?: { flags?: string; checkSecondFooter?: boolean }): Promise<DisposableValue<T>>
  create(handler: RemoteHandler, path: string, opts?: { flags?: string; compression?: string | undefined }): Promise<DisposableValue<T>>
}

interface VhdLibModule {
  openVhd(handler: RemoteHandler, path: string, opts?: { flags?: string; checkSecondFooter?: boolean }): Promise<DisposableValue<Vhd>>
  chainVhd(parentHandler: RemoteHandler, parentPath: string, childHandler: RemoteHandler, childPath: string, force?: boolean): Promise<void>
  VhdFile: VhdClass<Vhd>
  VhdDirectory: VhdClass<VhdDirectoryInstance>
  VhdSynthetic: { fromVhdChain(handler: RemoteHandler, childPath: string): Promise<DisposableValue<Vhd>> }
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
    PLATFORMS: Record<string, number>
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

export const vhdLib = require('vhd-lib') as VhdLibModule
export const vhdMerge = require('vhd-lib/merge.js') as MergeModule
export const vhdStructs = require('vhd-lib/_structs.js') as StructsModule
export const vhdUtils = require('vhd-lib/Vhd/_utils.js') as UtilsModule
export const vhdAliases = require('vhd-lib/aliases.js') as AliasesModule
export const vhdCreate = require('vhd-lib/_createFooterHeader.js') as CreateFooterHeaderModule
export const computeGeometryForSize = require('vhd-lib/_computeGeometryForSize.js') as (
  size: number,
) => DiskGeometry & { actualSize: number }

export const { BLOCK_UNUSED, FOOTER_SIZE, HEADER_SIZE, SECTOR_SIZE, DEFAULT_BLOCK_SIZE, DISK_TYPES, PLATFORMS } =
  vhdLib.Constants
