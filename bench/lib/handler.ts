/** A local `@xen-orchestra/fs` handler rooted at a folder, as xo-server would hand it over. */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

export interface OpenedHandler {
  readonly handler: RemoteHandler
  dispose(): Promise<void>
}

interface XoFs {
  getSyncedHandler(remote: { url: string }): Promise<{ value: RemoteHandler; dispose(): Promise<unknown> }>
}
const xoFs = createRequire(import.meta.url)('@xen-orchestra/fs') as XoFs

export async function openLocalHandler(root: string): Promise<OpenedHandler> {
  const { value, dispose } = await xoFs.getSyncedHandler({ url: pathToFileURL(root).href })
  return { handler: value, dispose: async () => void (await dispose()) }
}

/** a handler of any remote URL @xen-orchestra/fs knows (`s3+http://…` for the S3 cases) */
export async function openRemoteHandler(url: string): Promise<OpenedHandler> {
  const { value, dispose } = await xoFs.getSyncedHandler({ url })
  return { handler: value, dispose: async () => void (await dispose()) }
}
