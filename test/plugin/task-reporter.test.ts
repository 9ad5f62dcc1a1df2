import assert from 'node:assert/strict'

import { TaskReporter } from '../../src/plugin/task-reporter.js'
import { FakeTask, fakeTasks, taskTrees } from './fake-tasks.js'

describe('TaskReporter', () => {
  beforeEach(() => {
    FakeTask.events = []
  })

  it('nests a task per VM and per disk under the run, with progress, infos and warnings', async () => {
    const run = TaskReporter.create(fakeTasks, { name: 'run of job A', type: 'backup.continuousDelta' })
    const vm = run.child('vm1', { vm: 'uuid-1' })
    const system = vm.child('system')
    const data = vm.child('data')
    for (const percent of [0, 10.2, 10.7, 55, 100]) system.progress(percent)
    data.progress(50)
    vm.info('full forced: no base on the remote', { vdi: 'v1' })
    vm.warning('disk [NOBAK] scratch excluded')
    system.end({ status: 'success', data: { size: 42 } })
    data.end({ status: 'failure', error: new Error('export cut') })
    vm.end({ status: 'success' })
    run.end({ status: 'success' })
    await run.settled()
    await vm.settled()

    const [root, ...others] = taskTrees(FakeTask.events)
    assert.equal(others.length, 0)
    assert.ok(root)
    assert.equal(root.name, 'run of job A')
    assert.equal(root.status, 'success')
    assert.deepEqual(root.children.map(child => child.name), ['vm1'])
    const [vmNode] = root.children
    assert.ok(vmNode)
    assert.deepEqual(vmNode.infos, ['full forced: no base on the remote'])
    assert.deepEqual(vmNode.warnings, ['disk [NOBAK] scratch excluded'])
    assert.deepEqual(vmNode.children.map(child => child.name), ['system', 'data'])
    const [systemNode, dataNode] = vmNode.children
    // progress only moves when the whole percent changes
    assert.deepEqual(systemNode?.progress, [0, 10, 55, 100])
    assert.equal(systemNode?.status, 'success')
    assert.equal(dataNode?.status, 'failure')
    assert.deepEqual(dataNode?.progress, [50])
  })

  it('creates sibling subtasks asked for in the same tick', async () => {
    const run = TaskReporter.create(fakeTasks, { name: 'run' })
    const children = ['a', 'b', 'c', 'd'].map(name => run.child(name))
    for (const child of children) child.end({ status: 'success' })
    run.end({ status: 'success' })
    await run.settled()
    const [root] = taskTrees(FakeTask.events)
    assert.deepEqual(root?.children.map(child => [child.name, child.status]), [
      ['a', 'success'],
      ['b', 'success'],
      ['c', 'success'],
      ['d', 'success'],
    ])
  })

  it('keeps credentials out of task logs', async () => {
    const run = TaskReporter.create(fakeTasks, { name: 'run' })
    run.info('writing to nfs://backup:hunter2@nas/export', { url: 'smb://user:hunter2@host/share', password: 'hunter2' })
    run.end({ status: 'failure', error: new Error('cannot open s3://KEY:hunter2@bucket.example/dir') })
    await run.settled()
    const text = JSON.stringify(FakeTask.events)
    assert.ok(text.includes('nas/export'), 'the rest of the message is kept')
    assert.ok(!text.includes('hunter2'), text)
  })

  it('never throws when the task log fails', async () => {
    const run = TaskReporter.create(
      {
        create: () => {
          throw new Error('task store unavailable')
        },
      },
      { name: 'run' }
    )
    const child = run.child('vm')
    child.progress(10)
    child.end({ status: 'success' })
    run.end({ status: 'success' })
    await run.settled()
    assert.equal(await run.id(), undefined)
  })

  it('gives the abort signal of its root task', async () => {
    const created: FakeTask[] = []
    const run = TaskReporter.create(
      {
        create: properties => {
          const task = new FakeTask({ properties })
          created.push(task)
          return task
        },
      },
      { name: 'run' }
    )
    const signal = await run.abortSignal()
    assert.ok(signal !== undefined)
    assert.equal(signal.aborted, false)
    created[0]?.controller.abort(new Error('aborted in XO'))
    assert.equal(signal.aborted, true)
  })
})
