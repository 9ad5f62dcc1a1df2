/**
 * Xen Orchestra's listing cache of a VM folder, `cache.json.gz`: a gzip'd JSON object holding,
 * for every metadata file of the folder, its content plus `id` and `_filename` (its path,
 * `/xo-vm-backups/<vm>/<ts>.json`), as Xen Orchestra's own writer keeps it. Xen Orchestra lists
 * a VM's backups from it when present, and its clean-up warns ("unexpected number of entries in
 * backup cache") and rewrites it when it does not hold one entry per backup.
 *
 * Whoever changes a `.json` deletes the cache first (`invalidateMetadataCache`); a run writes it
 * anew once all its changes are done (`writeMetadataCache`), so that a remote we leave is one Xen
 * Orchestra's clean-up has nothing to say about. A crash in between leaves no cache, which Xen
 * Orchestra regenerates: never a stale one.
 */
import { gzip } from 'node:zlib'
import { promisify } from 'node:util'
import { metadataCachePath, vmDir } from './layout.js'
import type { RemoteHandler } from './remote-handler.js'

const gzipAsync = promisify(gzip)

/** what Xen Orchestra counts as a backup of the folder: a `*.json` that parses, of mode full or delta */
function isBackupMetadata(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const mode = (value as { mode?: unknown }).mode
  return mode === 'delta' || mode === 'full'
}

/** rewrites `cache.json.gz` of `vm`'s folder from its metadata files (ours and anyone's) */
export async function writeMetadataCache(handler: RemoteHandler, vm: string): Promise<void> {
  const dir = vmDir(vm)
  const cache: Record<string, unknown> = {}
  for (const name of (await handler.list(dir, { ignoreMissing: true })).filter(name => name.endsWith('.json')).sort()) {
    let parsed: unknown
    try {
      parsed = JSON.parse((await handler.readFile(`${dir}/${name}`)).toString('utf8'))
    } catch {
      continue // Xen Orchestra skips what it cannot read, and so does its cache
    }
    if (!isBackupMetadata(parsed)) continue
    const path = `/${dir}/${name}`
    cache[path] = { ...parsed, _filename: path, id: path }
  }
  // in place, as Xen Orchestra writes it: one cut short does not gunzip, and Xen Orchestra then
  // regenerates it
  await handler.writeFile(metadataCachePath(vm), await gzipAsync(JSON.stringify(cache)), { flags: 'w' })
}
