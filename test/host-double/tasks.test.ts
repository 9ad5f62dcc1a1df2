import assert from 'node:assert/strict'
import { join } from 'node:path'
import { startHostDouble, REPO_ROOT } from '../helpers/host.js'
import type { HostDouble, XoClient } from '../helpers/host.js'
import { Task } from './task.js'
import type { TaskEvent } from './task.js'
import { Tasks } from './tasks.js'
import type { TaskLog } from './tasks.js'

const TRIVIAL = join(REPO_ROOT, 'test/fixtures/trivial-plugin')

describe('host double: tasks', function () {
  describe('Task (the @vates/task instance API)', function () {
    it('emits start, property, info, warning and end events, children carrying their parent id', async function () {
      const events: TaskEvent[] = []
      const root = new Task({ properties: { name: 'root' }, onProgress: event => events.push(event) })
      root.id = 'root-id'
      const result = await root.run(async () => {
        Task.set('progress', 10)
        await Task.run({ properties: { name: 'child' } }, async () => {
          Task.info('hello', { n: 1 })
          Task.warning('careful')
        })
        return 'done'
      })
      assert.equal(result, 'done')
      assert.equal(root.status, 'success')
      const summary = events.map(event => [event.type, event.id === 'root-id' ? 'root' : 'child'])
      assert.deepEqual(summary, [
        ['start', 'root'],
        ['property', 'root'],
        ['start', 'child'],
        ['info', 'child'],
        ['warning', 'child'],
        ['end', 'child'],
        ['end', 'root'],
      ])
      const childStart = events[2] as Extract<TaskEvent, { type: 'start' }>
      assert.equal(childStart.parentId, 'root-id')
      assert.deepEqual(childStart.properties, { name: 'child' })
    })

    it('fails on rejection, stays pending after runInside, and its id is settable only before it is read', async function () {
      const task = new Task({ onProgress: () => {} })
      assert.equal(await task.runInside(() => 1), 1)
      assert.equal(task.status, 'pending')
      await assert.rejects(task.run(() => Promise.reject(new Error('boom'))), /boom/)
      assert.equal(task.status, 'failure')
      assert.throws(() => task.set('progress', 1), /not pending/)
      assert.throws(() => (task.id = 'late'), /only be set once/)
    })

    it('aborts subtasks with their parent', async function () {
      const events: TaskEvent[] = []
      const root = new Task({ onProgress: event => events.push(event) })
      await assert.rejects(
        root.run(() =>
          Task.run({ properties: { name: 'child' } }, async () => {
            root.abort(new Error('stop'))
            Task.abortSignal?.throwIfAborted()
          })
        ),
        /stop/
      )
      assert.equal(root.status, 'failure')
      assert.equal(events.filter(event => event.type === 'abortionRequested').length, 2)
    })

    it('does nothing on Task.info/set/warning outside any task', function () {
      Task.info('nobody listens')
      Task.set('progress', 1)
      Task.warning('nobody')
      assert.equal(Task.current, undefined)
    })
  })

  describe('xo.tasks (the log tree)', function () {
    it('records start, end, status, properties, infos, warnings, progress and children', async function () {
      const tasks = new Tasks()
      const task = tasks.create({ name: 'backup', type: 'xo:test', objectId: 'vm-1' })
      const Child = task.constructor as typeof Task
      await task.run(async () => {
        await Child.run({ properties: { name: 'disk 1' } }, async () => {
          Child.set('progress', 50)
          Child.info('transferred', { bytes: 123 })
        })
        await Child.run({ properties: { name: 'disk 2' } }, () => Child.warning('skipped', { reason: 'NOBAK' }))
        task.set('progress', 100)
      })
      const log = tasks.get(task.id)
      assert.equal(log.status, 'success')
      assert.deepEqual(log.properties, { name: 'backup', type: 'xo:test', objectId: 'vm-1', progress: 100 })
      assert.ok(log.end! >= log.start)
      const [disk1, disk2] = log.tasks!
      assert.deepEqual(disk1!.properties, { name: 'disk 1', progress: 50 })
      assert.deepEqual(disk1!.infos, [{ message: 'transferred', data: { bytes: 123 } }])
      assert.deepEqual(disk2!.warnings, [{ message: 'skipped', data: { reason: 'NOBAK' } }])
      assert.equal(tasks.get(disk1!.id).properties['name'], 'disk 1')
      assert.deepEqual(tasks.list().map(_ => _.id), [task.id])
    })

    it('keeps the error of a failed task, drops a successful one created with clearLogOnSuccess', async function () {
      const tasks = new Tasks()
      const failed = tasks.create({ name: 'failing' })
      await assert.rejects(failed.run(() => Promise.reject(Object.assign(new Error('nope'), { code: 'E_NOPE' }))))
      assert.equal(tasks.get(failed.id).status, 'failure')
      assert.deepEqual([(tasks.get(failed.id).result as { message: string }).message, (tasks.get(failed.id).result as { code: string }).code], ['nope', 'E_NOPE'])
      const quiet = tasks.create({ name: 'api call' }, { clearLogOnSuccess: true })
      await quiet.run(() => 1)
      assert.throws(() => tasks.get(quiet.id), (error: { code: number }) => error.code === 1)
    })
  })

  describe('through the API', function () {
    let host: HostDouble
    let admin: XoClient

    before(async function () {
      host = await startHostDouble({ pluginDir: TRIVIAL })
      admin = await host.signIn()
    })

    after(async function () {
      await host.close()
    })

    it('shows the task tree a plugin built (progress and children) with task.get and task.getAll', async function () {
      const id = await admin.call<string>('trivial.work', { steps: 3 })
      const log = await admin.call<TaskLog>('task.get', { id })
      assert.equal(log.status, 'success')
      assert.equal(log.properties['progress'], 100)
      assert.equal(log.properties['type'], 'xo:trivial:work')
      assert.deepEqual(
        log.tasks!.map(child => [child.properties['name'], child.status, child.properties['progress'], child.infos?.length, child.warnings?.length ?? 0]),
        [
          ['step 0', 'success', 100, 1, 0],
          ['step 1', 'success', 100, 1, 0],
          ['step 2', 'success', 100, 1, 1],
        ]
      )
      const all = await admin.call<TaskLog[]>('task.getAll')
      assert.deepEqual(all.map(_ => _.id), [id])
    })
  })
})
