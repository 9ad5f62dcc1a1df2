import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { connectXapi } from '../helpers/pool.js'

describe('simulator command line', () => {
  it('serves the default inventory with the given credentials and profile until killed', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sim-main-'))
    const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js')
    const child = spawn(process.execPath, [main, '--port', '0', '--data', dataDir, '--user', 'admin', '--password', 'pw', '--profile', 'xenserver-7.1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      let output = ''
      const url = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
          if (match !== null && output.includes('VM vm2')) resolve(match[1]!)
        })
        child.once('exit', code => reject(new Error(`exited with ${code}: ${output}`)))
      })
      assert.match(output, /credentials: admin \/ pw/)

      const xapi = await connectXapi({ url, user: 'admin', password: 'pw' })
      try {
        const master = xapi.getObjectByRef(xapi.pool.master as string) as unknown as { software_version: Record<string, string> }
        assert.equal(master.software_version.product_version, '7.1.2')
        const vm1 = Object.values(xapi.objects.all).find(o => o.$type === 'VM' && o.name_label === 'vm1')
        assert.ok(vm1 !== undefined)
        const vdiUuid = /system \(([0-9a-f-]{36})\)/.exec(output)![1]!
        assert.ok((await stat(join(dataDir, 'vdis', `${vdiUuid}.raw`))).size > 0)
      } finally {
        await xapi.disconnect()
      }
    } finally {
      const exited = new Promise(resolve => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
