/**
 * Xen Orchestra's current merge engine: `MergeRemoteDisk` of `@xen-orchestra/backup-archive`
 * (1.1.2, a devDependency), called as its `RemoteDiskLineage` calls it when XO cleans a VM's
 * backups (`removeUnused: true`, its default block concurrency of 2): the parent opened alone,
 * the child opened as a chain down to the parent, merged, both closed. The result ends under
 * the child's name, like ours.
 */
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

interface RemoteDisk {
  close(): Promise<void>
}
interface DisksModule {
  openDisk(opts: { handler: RemoteHandler; path: string; force?: boolean }): Promise<RemoteDisk>
  openDiskChain(opts: { handler: RemoteHandler; path: string; until?: string; force?: boolean }): Promise<RemoteDisk>
  MergeRemoteDisk: new (
    handler: RemoteHandler,
    opts: { removeUnused?: boolean; mergeBlockConcurrency?: number; logInfo?(): void },
  ) => { merge(parent: RemoteDisk, child: RemoteDisk): Promise<unknown> }
}

export async function xoMergeChain(handler: RemoteHandler, chain: readonly string[]): Promise<void> {
  const { openDisk, openDiskChain, MergeRemoteDisk } = (await import('@xen-orchestra/backup-archive/disks')) as unknown as DisksModule
  // XO compares normalized paths (from the remote root, with a leading slash)
  const normalize = (path: string): string => `/${path.replace(/^\/+/, '')}`
  const parentPath = normalize(chain[0]!)
  const childPath = normalize(chain[chain.length - 1]!)
  let parent: RemoteDisk | undefined
  let child: RemoteDisk | undefined
  try {
    parent = await openDisk({ handler, path: parentPath })
    child = await openDiskChain({ handler, path: childPath, until: parentPath })
    await new MergeRemoteDisk(handler, { removeUnused: true, logInfo: () => {} }).merge(parent, child)
  } finally {
    await parent?.close().catch(() => {})
    await child?.close().catch(() => {})
  }
}
