/**
 * Loads the product modules a case measures, and the test helpers it needs, by their built path.
 * A module that is absent or broken makes its cases report `skipped: <module> ...` instead of
 * failing the whole run. The signatures are the agreed ones (docs/architecture.md).
 */
import { access } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import type { JobEnvironment, JobRunResult, JobSpec } from '../../src/lifecycle/job.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

export interface MergeResult {
  readonly mergedPath: string
  readonly blocks: number
  readonly durationMs: number
}
export type MergeChain = (
  handler: RemoteHandler,
  chain: string[],
  opts?: { signal?: AbortSignal; onProgress?(done: number, total: number): void },
) => Promise<MergeResult>
export type RunJob = (job: JobSpec, env: JobEnvironment) => Promise<JobRunResult>
export type OpenChainStream = (handler: RemoteHandler, vhdPath: string) => Promise<{ stream: Readable; length: number }>

/** the root of the build output (`build/`), where `src/`, `test/` and `bench/` are compiled */
const BUILD_ROOT = new URL('../../', import.meta.url)

export type Loaded<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string }

/** `source` is the TypeScript path from the repository root, e.g. `src/repository/merge/index.ts` */
export async function loadOptional<T>(source: string, exportName: string): Promise<Loaded<T>> {
  const url = new URL(source.replace(/\.ts$/, '.js'), BUILD_ROOT)
  try {
    await access(url)
  } catch {
    return { ok: false, reason: `skipped: ${source} not available` }
  }
  let module: Record<string, unknown>
  try {
    module = (await import(url.href)) as Record<string, unknown>
  } catch (error) {
    return { ok: false, reason: `skipped: ${source} failed to load (${(error as Error).message.split('\n')[0]})` }
  }
  const value = module[exportName]
  if (typeof value !== 'function') return { ok: false, reason: `skipped: ${source} not available (no export ${exportName})` }
  return { ok: true, value: value as T }
}

export const loadMergeChain = (): Promise<Loaded<MergeChain>> => loadOptional('src/repository/merge/index.ts', 'mergeChain')
export const loadRunJob = (): Promise<Loaded<RunJob>> => loadOptional('src/lifecycle/run-job.ts', 'runJob')

/** the VHD stream of a chain if the module offers it, else nothing (the raw stream is not compared) */
export async function loadChainReader(): Promise<Loaded<OpenChainStream>> {
  return loadOptional<OpenChainStream>('src/restore/read-chain.ts', 'openChainVhdStream')
}
