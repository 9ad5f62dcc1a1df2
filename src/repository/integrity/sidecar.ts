/**
 * Where a VHD's block-checksum list lives: a sidecar file beside the VHD in its disk folder,
 * `<vhd name>.checksums` (`20261201T101010Z.vhd.checksums`, `20261201T101010Z.alias.vhd.checksums`).
 *
 * Why there: Xen Orchestra's clean-up (`cleanVm` with `remove`) deletes the files of the VM folder
 * root that no backup references, and inside a VHD directory's data folder the files no VHD
 * claims; in a disk folder it only touches disks (names ending in `.vhd`) and merge states
 * (`.<name>.merge.json`). A name ending in `.checksums` is neither.
 */
import { randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { normalizePath } from '../layout.js'
import type { RemoteHandler } from '../remote-handler.js'
import { BlockChecksums, BlockChecksumsFormatError } from './block-checksums.js'

export const SIDECAR_SUFFIX = '.checksums'

export function sidecarPath(vhdPath: string): string {
  return `${normalizePath(vhdPath)}${SIDECAR_SUFFIX}`
}

export function isSidecarName(name: string): boolean {
  return /^\d{8}T\d{6}Z(\.alias)?\.vhd\.checksums$/.test(name)
}

/** the VHD a sidecar describes */
export function vhdOfSidecar(path: string): string {
  return normalizePath(path).slice(0, -SIDECAR_SUFFIX.length)
}

/** writes (or replaces) the sidecar of `vhdPath` atomically: a hidden temporary name, then renamed */
export async function writeSidecar(handler: RemoteHandler, vhdPath: string, list: BlockChecksums): Promise<void> {
  const path = sidecarPath(vhdPath)
  const tmp = `${posix.dirname(path)}/.${posix.basename(path)}.${randomBytes(6).toString('hex')}.tmp`
  await handler.outputFile(tmp, list.serialize(), { flags: 'wx' })
  try {
    await handler.rename(tmp, path)
  } catch (error) {
    await handler.unlink(tmp).catch(() => {})
    throw error
  }
}

/** the temporary files interrupted `writeSidecar`s of `vhdPath` left behind, removed */
export async function removeSidecarTemps(handler: RemoteHandler, vhdPath: string): Promise<void> {
  const path = sidecarPath(vhdPath)
  const dir = posix.dirname(path)
  const prefix = `.${posix.basename(path)}.`
  for (const name of await handler.list(dir, { ignoreMissing: true })) {
    if (name.startsWith(prefix) && /^[0-9a-f]{12}\.tmp$/.test(name.slice(prefix.length))) await handler.unlink(`${dir}/${name}`).catch(() => {})
  }
}

export type SidecarRead =
  | { readonly status: 'ok'; readonly list: BlockChecksums }
  | { readonly status: 'missing' }
  | { readonly status: 'damaged'; readonly reason: string }

export async function readSidecar(handler: RemoteHandler, vhdPath: string): Promise<SidecarRead> {
  let raw: Buffer
  try {
    raw = await handler.readFile(sidecarPath(vhdPath))
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return { status: 'missing' }
    throw error
  }
  try {
    return { status: 'ok', list: BlockChecksums.parse(raw) }
  } catch (error) {
    if (error instanceof BlockChecksumsFormatError) return { status: 'damaged', reason: error.message }
    throw error
  }
}

export async function removeSidecar(handler: RemoteHandler, vhdPath: string): Promise<void> {
  await handler.unlink(sidecarPath(vhdPath)).catch((error: { code?: string }) => {
    if (error.code !== 'ENOENT') throw error
  })
}
