/**
 * The part of `vhd-lib` (untyped CommonJS) that the repository uses, behind a narrow declared
 * interface. Everything else in the repository imports vhd-lib through this module only.
 */
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import type { RemoteHandler } from './remote-handler.js'

export interface VhdDiskGeometry {
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
  diskGeometry: VhdDiskGeometry
  diskType: number
  checksum: number
  uuid: Buffer
  saved: string
  hidden: string
  reserved: string
}

export interface VhdParentLocatorEntry {
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
  parentLocatorEntry: VhdParentLocatorEntry[]
  reserved2: string
}

export interface VhdBlock {
  readonly id: number
  readonly bitmap: Buffer
  readonly data: Buffer
  readonly buffer: Buffer
}

/** a stream produced by vhd-lib, with its exact length in bytes */
export type SizedReadable = Readable & { length: number }

/** an opened VHD (file, directory or synthetic chain) */
export interface Vhd {
  header: VhdHeader
  footer: VhdFooter
  readonly bitmapSize: number
  readonly fullBlockSize: number
  readonly batSize: number
  readBlockAllocationTable(): Promise<void>
  containsBlock(blockId: number): boolean
  readBlock(blockId: number): Promise<VhdBlock>
  readParentLocator(id: number): Promise<{ platformCode: number; id: number; data: Buffer }>
  stream(opts?: { onProgress?(done: number, total: number): void }): SizedReadable
  rawContent(): SizedReadable
}

export interface WritableVhdDirectory extends Vhd {
  writeEntireBlock(block: { id: number; buffer: Buffer }): Promise<void>
  writeParentLocator(entry: { id: number; platformCode: number; data: Buffer }): Promise<void>
  writeBlockAllocationTable(): Promise<void>
  writeHeader(): Promise<void>
  writeFooter(): Promise<void>
}

export interface Disposable<T> {
  readonly value: T
  dispose(): unknown
}

/** a parsed item of a VHD stream, in stream order */
export type VhdStreamItem =
  | { type: 'footer'; footer: VhdFooter; offset: number }
  | { type: 'header'; header: VhdHeader; offset: number }
  | { type: 'parentLocator'; id: string; offset: number; size: number; buffer: Buffer }
  | { type: 'bat'; offset: number; size: number; buffer: Buffer; blockCount: number }
  | { type: 'block'; id: number; offset: number; size: number; bitmap: Buffer; data: Buffer; buffer: Buffer }

interface StructPacker<T> {
  pack(value: Partial<T>): Buffer
  readonly size: number
}

interface VhdLibModule {
  openVhd(handler: RemoteHandler, path: string, opts?: { flags?: string; checkSecondFooter?: boolean }): Promise<Disposable<Vhd>>
  VhdDirectory: {
    create(handler: RemoteHandler, path: string, opts?: { flags?: string; compression?: string }): Promise<Disposable<WritableVhdDirectory>>
  }
  VhdSynthetic: {
    /** `paths`: the chain, oldest (the full) first */
    open(handler: RemoteHandler, paths: readonly string[], opts?: { flags?: string }): Promise<Disposable<Vhd>>
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

interface VhdLibStructs {
  fuFooter: StructPacker<VhdFooter>
  fuHeader: StructPacker<VhdHeader>
  checksumStruct(buffer: Buffer, struct: StructPacker<unknown>): number
}

interface VhdLibUtils {
  unpackFooter(buffer: Buffer): VhdFooter
  unpackHeader(buffer: Buffer, footer?: VhdFooter): VhdHeader
  computeBatSize(entries: number): number
  computeFullBlockSize(blockSize: number): number
}

const require = createRequire(import.meta.url)
const vhdLib = require('vhd-lib') as VhdLibModule
const structs = require('vhd-lib/_structs.js') as VhdLibStructs
const utils = require('vhd-lib/Vhd/_utils.js') as VhdLibUtils
const aliases = require('vhd-lib/aliases.js') as {
  isVhdAlias(path: string): boolean
  resolveVhdAlias(handler: RemoteHandler, path: string): Promise<string>
}
const streamParser = require('vhd-lib/parseVhdStream.js') as {
  parseVhdStream(stream: Readable): AsyncGenerator<VhdStreamItem>
}

export const { openVhd, VhdDirectory, VhdSynthetic, VhdAbstract, Constants } = vhdLib
export const { fuFooter, fuHeader, checksumStruct } = structs
export const { unpackFooter, unpackHeader, computeBatSize, computeFullBlockSize } = utils
export const { isVhdAlias, resolveVhdAlias } = aliases
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
