import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { withChainLock } from '../../src/repository/lock.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const OTHER_VM = '4fbd5b64-44bd-4ea5-a6d0-2b8f5e1fcf7d'
const { getSyncedHandler } = createRequire(import.meta.url)('@xen-orchestra/fs') as {
  getSyncedHandler(remote: { url: string }): Promise<{ value: RemoteHandler; dispose(): Promise<void> }>
}

function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void
  const promise = new Promise<void>(r => (resolve = r))
  return { promise, resolve }
}

describe('chain lock', () => {
  let remote: TempRemote
  beforeEach(async () => {
    remote = await openTempRemote()
  })
  afterEach(async () => {
    await remote.close()
  })

  it('refuses a second writer of the same VM in this process, not of another VM, and frees on exit', async () => {
    const release = deferred()
    const entered = deferred()
    const first = withChainLock(remote.handler, VM, async () => {
      entered.resolve()
      await release.promise
      return 'first'
    })
    await entered.promise
    await assert.rejects(withChainLock(remote.handler, VM, async () => 'second'), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'CHAIN_LOCKED')
      assert.match(error.message, new RegExp(VM))
      return true
    })
    assert.equal(await withChainLock(remote.handler, OTHER_VM, async () => 'other'), 'other')
    release.resolve()
    assert.equal(await first, 'first')
    assert.equal(await withChainLock(remote.handler, VM, async () => 'again'), 'again')
  })

  it('frees the lock when the writer fails', async () => {
    await assert.rejects(withChainLock(remote.handler, VM, async () => Promise.reject(new Error('boom'))), /boom/)
    assert.equal(await withChainLock(remote.handler, VM, async () => 'after'), 'after')
  })

  it('refuses a writer holding another handler of the same remote', async () => {
    const second = await getSyncedHandler({ url: 'file://' + remote.root })
    try {
      const release = deferred()
      const entered = deferred()
      const first = withChainLock(remote.handler, VM, async () => {
        entered.resolve()
        await release.promise
      })
      await entered.promise
      await assert.rejects(withChainLock(second.value, VM, async () => undefined), { code: 'CHAIN_LOCKED' })
      release.resolve()
      await first
      await withChainLock(second.value, VM, async () => undefined)
    } finally {
      await second.dispose()
    }
  })

  it('refuses a writer in another process', async () => {
    const lockModule = new URL('../../src/repository/lock.js', import.meta.url).href
    const script = `
      const { withChainLock } = await import(${JSON.stringify(lockModule)})
      const { getSyncedHandler } = (await import('module')).createRequire(${JSON.stringify(fileURLToPath(import.meta.url))})('@xen-orchestra/fs')
      const { value } = await getSyncedHandler({ url: ${JSON.stringify('file://' + remote.root)} })
      await withChainLock(value, ${JSON.stringify(VM)}, async () => {
        process.stdout.write('locked\\n')
        await new Promise(resolve => process.stdin.once('end', resolve).resume())
      })
      process.stdout.write('released\\n')
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
    let output = ''
    const saw = (text: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => output.includes(text) && resolve()
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          check()
        })
        child.once('exit', code => (output.includes(text) ? resolve() : reject(new Error(`child exited (${code}): ${output}`))))
        check()
      })
    await saw('locked')
    await assert.rejects(withChainLock(remote.handler, VM, async () => undefined), { code: 'CHAIN_LOCKED' })
    child.stdin.end()
    await saw('released')
    assert.equal(await withChainLock(remote.handler, VM, async () => 'mine'), 'mine')
  })
})
