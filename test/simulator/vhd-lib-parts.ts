/**
 * The parts of vhd-lib (CommonJS, untyped) the simulator uses, behind narrow declared types:
 * the footer/header structures with their checksum, the CHS geometry and the stream parser.
 */
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'

const require = createRequire(import.meta.url)

export interface VhdGeometry {
  cylinders: number
  heads: number
  sectorsPerTrackCylinder: number
}

/** A struct-fu structure: packs an object into its binary form. */
export interface PackableStruct {
  readonly size: number
  pack(value: Record<string, unknown>): Buffer
}

interface Structs {
  fuFooter: PackableStruct
  fuHeader: PackableStruct
  checksumStruct(buffer: Buffer, struct: PackableStruct): number
}

export interface VhdConstants {
  FOOTER_SIZE: number
  HEADER_SIZE: number
  SECTOR_SIZE: number
  DEFAULT_BLOCK_SIZE: number
  BLOCK_UNUSED: number
  FOOTER_COOKIE: string
  HEADER_COOKIE: string
  FILE_FORMAT_VERSION: number
  HEADER_VERSION: number
  DISK_TYPES: { FIXED: number; DYNAMIC: number; DIFFERENCING: number }
}

export type ParsedVhdItem =
  | { type: 'footer'; footer: { currentSize: number; diskType: number; uuid: Buffer } }
  | { type: 'header'; header: { blockSize: number; maxTableEntries: number; parentUuid: Buffer } }
  | { type: 'bat' }
  | { type: 'parentLocator' }
  | { type: 'block'; id: number; bitmap: Buffer; data: Buffer }

const structs = require('vhd-lib/_structs.js') as Structs
export const { fuFooter, fuHeader, checksumStruct } = structs
export const vhdConstants = require('vhd-lib/_constants.js') as VhdConstants
export const computeGeometryForSize = require('vhd-lib/_computeGeometryForSize.js') as (size: number) => VhdGeometry
export const { parseVhdStream } = require('vhd-lib/parseVhdStream.js') as {
  parseVhdStream(stream: Readable): AsyncIterable<ParsedVhdItem>
}
