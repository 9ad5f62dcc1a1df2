/**
 * What the benchmark runner asks a worker process to measure, and what the worker answers.
 * Each measurement runs in its own process, so its peak RSS is its own.
 */
import type { S3Target } from '../lib/s3-upload.js'

export type { S3Target }
export interface PoolAccess {
  readonly url: string
  readonly user: string
  readonly password: string
}

export type Task =
  /** the I/O floor of a merge: read the child's blocks, pwrite them into the parent where a merge puts them, fsync */
  | { readonly kind: 'floor'; readonly parent: string; readonly child: string }
  /**
   * merge `chain` (paths relative to `root`) and flush the result; with `url`, on that remote
   * (S3: nothing to flush, an object is durable once written)
   */
  | {
      readonly kind: 'merge'
      readonly impl: 'ours' | 'vhd-lib' | 'xo'
      readonly root: string
      readonly url?: string
      readonly chain: readonly string[]
      readonly countBlockIo: boolean
    }
  /**
   * stream a VDI delta from the pool into a file, unparsed, and flush it; with `referenceOnly`,
   * only snapshot the VM (the reference of the next delta)
   */
  | {
      readonly kind: 'raw-export'
      readonly pool: PoolAccess
      readonly vm: string
      readonly vdi: string
      readonly output: string
      readonly referenceOnly?: boolean
      /** upload the stream to S3 (multipart) instead of writing `output` */
      readonly upload?: S3Target
    }
  /** one run of a continuous delta backup job (of `vm`, or of `vms`, `concurrency` at once) */
  | {
      readonly kind: 'run-job'
      readonly pool: PoolAccess
      readonly remoteRoot: string
      /** the remote's URL when it is not the local folder `remoteRoot` */
      readonly remoteUrl?: string
      readonly vm: string
      readonly vms?: readonly string[]
      readonly concurrency?: number
      readonly jobId: string
      readonly retention: number
      readonly useVhdDirectory: boolean
      /** the job's disk transport (default: the job's default, auto) */
      readonly transport?: 'auto' | 'nbd' | 'export'
      readonly nbdConnections?: number
    }
  /** read a chain (path relative to `root`) as one VHD stream */
  | { readonly kind: 'read-chain'; readonly root: string; readonly path: string }
  /** stream a single file, as `cat` would */
  /** `checkBlock`: read in blocks of that many bytes, each hashed (sha256) on the reading thread as it passes */
  | { readonly kind: 'read-file'; readonly file: string; readonly checkBlock?: number }
  /** list the restore points of the remote at `root` (or run retention over all its VMs) */
  | { readonly kind: 'listing'; readonly impl: ListingImpl; readonly root: string; readonly jobId: string; readonly keep: number }

/**
 * `api`: listRestorePoints (the plugin API's path); `cli`: the DR CLI's `list`, a process;
 * `retention`: the retention pass of a run, every VM; `plain`: readdir + readFile + JSON.parse;
 * `plain-process`: the same in a fresh `node` process
 */
export type ListingImpl = 'api' | 'cli' | 'retention' | 'plain' | 'plain-process'

export interface TaskResult {
  /** wall-clock milliseconds of the measured operation, flush included */
  readonly ms: number
  /** peak RSS of the worker process at the end of the operation, MiB */
  readonly peakRssMiB: number
  /** bytes produced (stream length, file size) where it applies */
  readonly bytes?: number
  /** where the merged VHD ended, relative to the remote root */
  readonly mergedPath?: string
  /** bytes of VHD directory block files read/written through the remote handler, block bitmaps apart */
  readonly blockIo?: { readonly read: number; readonly written: number; readonly bitmapRead: number }
  /** bytes passed to read/write system calls by the worker during the operation */
  readonly processIo?: { readonly rchar: number; readonly wchar: number }
  readonly detail?: Readonly<Record<string, unknown>>
}

export type TaskOutcome =
  | { readonly ok: true; readonly result: TaskResult }
  | { readonly ok: false; readonly skipped: boolean; readonly reason: string }
