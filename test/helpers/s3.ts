/**
 * An S3 server on 127.0.0.1 for tests: `s3rver` run as a child process (it needs the legacy
 * OpenSSL provider, which must not leak into the test process), on a random free port, storing
 * its objects under a fresh temp folder. Buckets are folders of that store: `url(bucket)`
 * creates the bucket it names.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** s3rver's built-in account */
export const S3_ACCESS_KEY = 'S3RVER'
export const S3_SECRET_KEY = 'S3RVER'

export interface S3Server {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string
  /** the folder s3rver stores its buckets in */
  readonly dataDir: string
  /** `s3+http://KEY:SECRET@127.0.0.1:PORT/bucket[/dir]?useVhdDirectory=true`; creates the bucket */
  url(bucket: string, dir?: string): string
  /** where s3rver keeps the bytes of one object (to corrupt or remove it behind the client's back) */
  objectPath(bucket: string, key: string): string
  close(): Promise<void>
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/
const STARTUP_TIMEOUT_MS = 20_000

function s3rverBin(): string {
  return createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js')
}

function waitForListening(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const timer = setTimeout(() => fail(new Error('s3rver did not start in time')), STARTUP_TIMEOUT_MS)
    const onOut = (chunk: Buffer): void => {
      out += chunk.toString()
      const match = /listening on [^\s:]+:(\d+)/.exec(out)
      if (match !== null) {
        cleanup()
        resolve(Number(match[1]))
      }
    }
    const onErr = (chunk: Buffer): void => {
      err += chunk.toString()
    }
    const onExit = (code: number | null, signal: string | null): void =>
      fail(new Error(`s3rver exited before listening (${code ?? signal}): ${err.trim()}`))
    function cleanup(): void {
      clearTimeout(timer)
      child.stdout?.off('data', onOut)
      child.off('exit', onExit)
    }
    function fail(error: Error): void {
      cleanup()
      reject(error)
    }
    child.stdout?.on('data', onOut)
    child.stderr?.on('data', onErr)
    child.once('exit', onExit)
  })
}

export interface StartS3Options {
  /**
   * the secret key the URLs carry (default: s3rver's own); any other value makes the server
   * accept every well-formed signature of its access key, so that a test can use a secret it
   * recognises
   */
  readonly secretKey?: string
}

export async function startS3(opts: StartS3Options = {}): Promise<S3Server> {
  const secretKey = opts.secretKey ?? S3_SECRET_KEY
  const dataDir = await mkdtemp(join(tmpdir(), 's3rver-'))
  const args = [s3rverBin(), '--directory', dataDir, '--address', '127.0.0.1', '--port', '0', '--silent', '--no-vhost-buckets']
  if (secretKey !== S3_SECRET_KEY) args.push('--allow-mismatched-signatures')
  const child = spawn(
    process.execPath,
    args,
    {
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let port: number
  try {
    port = await waitForListening(child)
  } catch (error) {
    child.kill('SIGKILL')
    await rm(dataDir, { recursive: true, force: true })
    throw error
  }
  // keep draining its output so that it never blocks on a full pipe
  child.stdout?.resume()
  child.stderr?.resume()
  const exited = new Promise<void>(resolve => {
    if (child.exitCode !== null || child.signalCode !== null) resolve()
    else child.once('exit', () => resolve())
  })
  const endpoint = `http://127.0.0.1:${port}`

  function bucketDir(bucket: string): string {
    if (!BUCKET_NAME.test(bucket)) throw new Error(`invalid bucket name: ${bucket}`)
    return join(dataDir, bucket)
  }

  return {
    endpoint,
    dataDir,
    url(bucket, dir) {
      mkdirSync(bucketDir(bucket), { recursive: true })
      const path = dir === undefined || dir === '' ? bucket : `${bucket}/${dir.replace(/^\/+|\/+$/g, '')}`
      return `s3+http://${S3_ACCESS_KEY}:${encodeURIComponent(secretKey)}@127.0.0.1:${port}/${path}?useVhdDirectory=true`
    },
    objectPath(bucket, key) {
      const parts = key.split('/')
      const name = parts.pop() ?? ''
      return join(bucketDir(bucket), ...parts, `${name}._S3rver_object`)
    },
    async close() {
      child.kill('SIGKILL')
      await exited
      child.stdout?.destroy()
      child.stderr?.destroy()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}
