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

  it('writes nothing when stderr is not a TTY, or with --json', () => {
    const pipe = new FakeTerminal(false)
    assert.equal(progressReporter(pipe, true), silentReporter)
    const tty = new FakeTerminal(true)
    assert.equal(progressReporter(tty, false), silentReporter)
  })
})
