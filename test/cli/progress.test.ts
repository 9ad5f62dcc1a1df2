import assert from 'node:assert/strict'

import { progressReporter, silentReporter } from '../../src/cli/progress.js'
import type { Terminal } from '../../src/cli/progress.js'

class FakeTerminal implements Terminal {
  readonly columns = 60
  output = ''
  constructor(readonly isTTY: boolean) {}
  write(text: string): boolean {
    this.output += text
    return true
  }
}

describe('CLI progress reporter', () => {
  it('draws one bar per disk in place on a TTY, redrawing only when the percent changes', () => {
    const terminal = new FakeTerminal(true)
    const disk = progressReporter(terminal, true).child('disk "system"')
    for (const percent of [0, 0.4, 12, 12.9, 50, 100]) disk.progress(percent)
    disk.end({ status: 'success' })
    const frames = terminal.output.split('\r').filter(frame => frame !== '')
    assert.deepEqual(frames.map(frame => frame.trim().split(' ').pop()), ['0%', '12%', '50%', '100%'])
    assert.ok(frames.every(frame => frame.startsWith('disk "system" [')))
    assert.ok(terminal.output.endsWith('\n'))
  })

  it('writes plain lines when stderr is not a TTY: each tenth passed, then the end; a failure said', () => {
    const pipe = new FakeTerminal(false)
    const root = progressReporter(pipe, true)
    const disk = root.child('disk "system"')
    for (const percent of [0, 3, 12, 19, 55, 99]) disk.progress(percent)
    disk.end({ status: 'success' })
    const other = root.child('disk "data"')
    other.progress(40)
    other.end({ status: 'failure' })
    assert.equal(pipe.output, ['disk "system": 0%', 'disk "system": 10%', 'disk "system": 50%', 'disk "system": 90%', 'disk "system": 100%', 'disk "data": 40%', 'disk "data": failed', ''].join('\n'))
    assert.ok(!pipe.output.includes('\r'), 'no redrawing in a pipe')
  })

  it('writes nothing with --json', () => {
    assert.equal(progressReporter(new FakeTerminal(false), false), silentReporter)
    assert.equal(progressReporter(new FakeTerminal(true), false), silentReporter)
  })
})
