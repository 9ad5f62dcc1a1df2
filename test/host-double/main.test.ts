import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { REPO_ROOT } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'
import { createXoLibClient } from './vendor.js'

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url))

describe('host double: npm run host', function () {
  it('serves the plugin with the pools and remotes given, until SIGTERM', async function () {
    const pool = await startSimulatedPool()
    const remoteDir = await mkdtemp(join(tmpdir(), 'hd-main-'))
    const dataDir = await mkdtemp(join(tmpdir(), 'hd-main-data-'))
    const child = spawn(
      process.execPath,
      [MAIN, '--port', '0', '--plugin-dir', join(REPO_ROOT, 'test/fixtures/trivial-plugin'), '--pool', pool.url, '--pool-user', pool.user, '--pool-password', pool.password, '--remote', 'file://' + remoteDir, '--data-dir', dataDir],
      { stdio: ['ignore', 'pipe', 'inherit'] }
    )
    try {
      let out = ''
      child.stdout.setEncoding('utf8')
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: string) => {
          out += chunk
          const match = /listening on (ws:\/\/127\.0\.0\.1:\d+)\/api\//.exec(out)
          if (match !== null && out.includes('API methods')) resolve(match[1]!)
        })
        child.once('exit', code => reject(new Error(`exited early (${code}): ${out}`)))
      })
      assert.match(out, /plugin: trivial 1\.2\.3 \(loaded\)/)
      assert.match(out, new RegExp(`pool: ${pool.url} connected`))
      assert.match(out, new RegExp(`remote: \\S+ remote1 file://${remoteDir}`))

      const xo = await createXoLibClient(url)
      await xo.open()
      await xo.signIn({ email: 'admin@admin.net', password: 'admin' })
      assert.equal(await xo.call('trivial.greet', { name: 'Ada' }), 'hello, Ada')
      const [remote] = (await xo.call('remote.getAll')) as { url: string }[]
      assert.equal(remote!.url, 'file://' + remoteDir)
      await xo.close()

      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const [code] = (await exited) as [number | null]
      assert.equal(code, 0)
      // the given data dir is kept, with the state of the run
      const remotes = JSON.parse(await readFile(join(dataDir, 'remotes.json'), 'utf8')) as { url: string }[]
      assert.deepEqual(remotes.map(_ => _.url), ['file://' + remoteDir])
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
      await pool.close()
      await rm(remoteDir, { recursive: true, force: true })
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
