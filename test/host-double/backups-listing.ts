/**
 * XO's listing of the VM backups on remotes (`backupNg.listVmBackups`, the Backup → Restore
 * view; `xo-mixins/backups-ng/index.mjs` `listVmBackupsNg`): every delta or full backup whose
 * metadata is on the remote, whoever wrote it, keyed by remote id then VM uuid. As in xo-server,
 * each remote's listing is cached for `backups.listingDebounce` (1 minute): a backup written or
 * deleted meanwhile is not seen until then, unless `invalidateVmBackupsListing(remoteId)` drops
 * the cache (or the caller forces a refresh).
 */
import type { FsHandler } from './vendor.js'

export const LISTING_DEBOUNCE_MS = 60_000

export interface ListedBackup {
  /** `<remote id>/<metadata path>` */
  readonly id: string
  readonly jobId: unknown
  readonly mode: unknown
  readonly timestamp: unknown
  readonly vm: unknown
}

type Listing = Record<string, ListedBackup[]>

const METADATA_NAME = /^\d{8}T\d{6}Z\.json$/

export class BackupsListing {
  readonly #handler: (remoteId: string) => Promise<FsHandler>
  readonly #cache = new Map<string, { readonly at: number; readonly listing: Promise<Listing> }>()

  constructor(handler: (remoteId: string) => Promise<FsHandler>) {
    this.#handler = handler
  }

  async list(remoteIds: readonly string[], { forceRefresh = false }: { forceRefresh?: boolean } = {}): Promise<Record<string, Listing>> {
    const result: Record<string, Listing> = {}
    for (const remoteId of remoteIds) {
      let cached = this.#cache.get(remoteId)
      if (forceRefresh || cached === undefined || Date.now() - cached.at >= LISTING_DEBOUNCE_MS) {
        cached = { at: Date.now(), listing: this.#read(remoteId) }
        this.#cache.set(remoteId, cached)
        cached.listing.catch(() => this.#cache.delete(remoteId))
      }
      result[remoteId] = await cached.listing
    }
    return result
  }

  invalidate(remoteId: string): void {
    this.#cache.delete(remoteId)
  }

  async #read(remoteId: string): Promise<Listing> {
    const handler = await this.#handler(remoteId)
    const listing: Listing = {}
    for (const vm of await handler.list('xo-vm-backups', { ignoreMissing: true })) {
      const backups: ListedBackup[] = []
      for (const name of (await handler.list(`xo-vm-backups/${vm}`, { ignoreMissing: true }).catch(() => [])).filter(name => METADATA_NAME.test(name)).sort()) {
        const path = `xo-vm-backups/${vm}/${name}`
        try {
          const metadata: unknown = JSON.parse(String(await handler.readFile(path)))
          const field = (key: string): unknown => (typeof metadata === 'object' && metadata !== null ? Reflect.get(metadata, key) : undefined)
          backups.push({ id: `${remoteId}/${path}`, jobId: field('jobId'), mode: field('mode'), timestamp: field('timestamp'), vm })
        } catch {
          // XO skips a metadata file it cannot read
        }
      }
      if (backups.length > 0) listing[vm] = backups
    }
    return listing
  }
}
