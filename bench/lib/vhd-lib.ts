/**
 * The narrow part of vhd-lib (untyped CommonJS) that the benchmark uses: its merge, the baseline
 * that Xen Orchestra runs today, and its reader, used to hash merged disks.
 */
import { createRequire } from 'node:module'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

export interface VhdLibBlock {
  readonly id: number
  readonly bitmap: Buffer
  readonly data: Buffer
}

export interface VhdLibVhd {
  readonly footer: { readonly uuid: Buffer; readonly currentSize: number; readonly diskType: number }
  readonly header: { readonly maxTableEntries: number; readonly blockSize: number }
  readBlockAllocationTable(): Promise<void>
  containsBlock(blockId: number): boolean
  readBlock(blockId: number): Promise<VhdLibBlock>
}

export interface VhdLibDisposable<T> {
  readonly value: T
  dispose(): unknown
}

interface VhdLibModule {
  openVhd(handler: RemoteHandler, path: string, opts?: { flags?: string }): Promise<VhdLibDisposable<VhdLibVhd>>
}

export interface VhdLibMergeOptions {
  readonly removeUnused?: boolean
  readonly mergeBlockConcurrency?: number
  onProgress?(progress: { total: number; done: number }): void
}

interface VhdLibMergeModule {
  mergeVhdChain(
    handler: RemoteHandler,
    chain: readonly string[],
    opts?: VhdLibMergeOptions,
  ): Promise<{ mergedDataSize: number; finalVhdSize: number }>
}

const require = createRequire(import.meta.url)

export const { openVhd } = require('vhd-lib') as VhdLibModule
export const { mergeVhdChain } = require('vhd-lib/merge.js') as VhdLibMergeModule
