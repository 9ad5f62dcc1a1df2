import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

describe('host double: close', function () {
  it('leaves no open handle: the process ends on its own after close()', async function () {
    const child = fork(fileURLToPath(new URL('./close-probe.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let report: { closed: boolean; resources: string[] } | undefined
    child.on('message', message => (report = message as typeof report))
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
    clearTimeout(timer)
    assert.equal(report?.closed, true, 'the probe reached the end')
    assert.equal(signal, null, `the process was still alive 20 s after close(); resources then: ${report?.resources.join(', ')}`)
    assert.equal(code, 0)
  })
})
