/**
 * Every kind of remote the product writes to, for suites that must hold on each of them:
 * a local folder with VHD files, a local folder with VHD directories, and S3 (s3rver on
 * 127.0.0.1, always VHD directories). Each remote is a fresh, empty, connected
 * `@xen-orchestra/fs` handler; `close()` forgets it and removes everything it held.
 *
 *   describeEachRemote('retention', remote => {
 *     it('keeps N restore points', async () => { const { handler } = remote(); ... })
 *   })
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { startS3, type S3Server } from './s3.js'

export const REMOTE_KINDS = ['file', 'file-vhd-directory', 's3'] as const
export type RemoteKind = (typeof REMOTE_KINDS)[number]

export interface TestRemote {
  readonly kind: RemoteKind
  /** the remote URL, as an XO remote would hold it (credentials included for S3) */
  readonly url: string
  readonly handler: RemoteHandler
  /** the local folder behind a `file` remote */
  readonly path?: string
  /** the S3 server behind an `s3` remote */
  readonly s3?: S3Server
  /** whether VHDs go to this remote as VHD directories (`.alias.vhd`) */
  readonly vhdDirectory: boolean
  close(): Promise<void>
}

interface SyncedHandler {
  readonly value: RemoteHandler
  dispose(): Promise<void>
}
interface XoFs {
  getSyncedHandler(remote: { url: string }): Promise<SyncedHandler>
}
const xoFs = createRequire(import.meta.url)('@xen-orchestra/fs') as XoFs

/** A connected handler for any remote URL; `dispose()` forgets it. */
export function openHandler(url: string): Promise<SyncedHandler> {
  return xoFs.getSyncedHandler({ url })
}

async function openFileRemote(kind: 'file' | 'file-vhd-directory'): Promise<TestRemote> {
  const path = await mkdtemp(join(tmpdir(), 'remote-'))
  const vhdDirectory = kind === 'file-vhd-directory'
  const url = 'file://' + path + (vhdDirectory ? '?useVhdDirectory=true' : '')
  const { value: handler, dispose } = await openHandler(url)
  return {
    kind,
    url,
    handler,
    path,
    vhdDirectory,
    async close() {
      await dispose()
      await rm(path, { recursive: true, force: true })
    },
  }
}

async function openS3Remote(): Promise<TestRemote> {
  const s3 = await startS3()
  try {
    const url = s3.url('backups', 'xo')
    const { value: handler, dispose } = await openHandler(url)
    return {
      kind: 's3',
      url,
      handler,
      s3,
      vhdDirectory: true,
      async close() {
        await dispose()
        await s3.close()
      },
    }
  } catch (error) {
    await s3.close()
    throw error
  }
}

export function openRemote(kind: RemoteKind): Promise<TestRemote> {
  return kind === 's3' ? openS3Remote() : openFileRemote(kind)
}

/**
 * Runs `suite` once per remote kind, in a `describe` titled `title [kind]`. The remote is opened
 * before the suite's tests and closed after them; `remote()` returns it inside tests and hooks.
 */
export function describeEachRemote(
  title: string,
  suite: (remote: () => TestRemote) => void,
  kinds: readonly RemoteKind[] = REMOTE_KINDS,
): void {
  for (const kind of kinds) {
    describe(`${title} [${kind}]`, function () {
      let current: TestRemote | undefined
      before(async function () {
        current = await openRemote(kind)
      })
      after(async function () {
        await current?.close()
        current = undefined
      })
      suite(() => {
        if (current === undefined) throw new Error(`the ${kind} remote is not open`)
        return current
      })
    })
  }
}
