/**
 * The narrow part of vhd-lib (untyped) that the reliability suites use to build and read VHDs
 * independently of the product's own writer and reader.
 */
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

export interface VhdFooter {
  currentSize: number
  diskType: number
  uuid: Buffer
  [field: string]: unknown
}
export interface VhdHeader {
  blockSize: number
  maxTableEntries: number
  parentUuid: Buffer
  [field: string]: unknown
}
export interface VhdBlock {
  readonly id: number
  readonly bitmap: Buffer
  readonly data: Buffer
  readonly buffer: Buffer
}
export interface Vhd {
  footer: VhdFooter
  header: VhdHeader
  readBlockAllocationTable(): Promise<void>
  containsBlock(id: number): boolean
  readBlock(id: number): Promise<VhdBlock>
  writeEntireBlock(block: VhdBlock): Promise<void>
  writeBlockAllocationTable(): Promise<void>
  writeHeader(): Promise<void>
  writeFooter(): Promise<void>
  rawContent(): Readable & { length: number }
}
interface Disposable<T> {
  readonly value: T
  dispose(): void | Promise<void>
}
export type VhdStreamItem =
  | { type: 'footer'; footer: VhdFooter }
  | { type: 'header'; header: VhdHeader }
  | ({ type: 'block' } & VhdBlock)
  | { type: 'bat' | 'parentLocator' }

interface VhdLib {
  openVhd(handler: RemoteHandler, path: string, opts?: { flags?: string }): Promise<Disposable<Vhd>>
  VhdDirectory: { create(handler: RemoteHandler, path: string): Promise<Disposable<Vhd>> }
  VhdAbstract: { createAlias(handler: RemoteHandler, aliasPath: string, targetPath: string): Promise<void> }
  createReadableSparseStream(
    diskSize: number,
    fragmentSize: number,
    fragmentLogicAddressList: number[],
    fragments: Iterable<{ logicalAddressBytes: number; data: Buffer }>,
  ): Promise<Readable & { length: number }>
}
interface ParseVhdStream {
  parseVhdStream(stream: Readable): AsyncIterable<VhdStreamItem>
}

const require = createRequire(import.meta.url)
export const vhdLib = require('vhd-lib') as VhdLib
export const { parseVhdStream } = require('vhd-lib/parseVhdStream.js') as ParseVhdStream

export const VHD_BLOCK_SIZE = 2 * 1024 * 1024
