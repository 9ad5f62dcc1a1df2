import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { forEachConcurrently, mapConcurrently } from '../../src/repository/concurrency.js'

/** a task whose items finish in the order `finishOrder` gives, counting how many run at once */
function tracked(finishOrder: readonly number[]) {
  let running = 0
  let most = 0
  const started: number[] = []
  const task = async (item: number): Promise<string> => {
    started.push(item)
    running += 1
    most = Math.max(most, running)
    // later items of `finishOrder` wait more turns of the event loop
    for (let i = 0; i <= finishOrder.indexOf(item); i++) await nextTurn()
    running -= 1
    return `#${item}`
  }
  return { task, started, most: () => most }
}

describe('mapConcurrently', () => {
  it('gives the results in the order of the items, whatever order they finish in', async () => {
    const items = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    const { task } = tracked([9, 3, 7, 1, 0, 8, 2, 6, 5, 4])
    assert.deepEqual(await mapConcurrently(items, 4, task), items.map(item => `#${item}`))
  })

  it('never runs more than `concurrency` tasks at once, and uses them all', async () => {
    const items = Array.from({ length: 20 }, (_, i) => i)
    const { task, most } = tracked([...items].reverse())
    await mapConcurrently(items, 3, task)
    assert.equal(most(), 3)
  })

  it('of no items is an empty list', async () => {
    assert.deepEqual(await mapConcurrently([], 8, async () => 1), [])
  })

  it('rejects with the first error and starts no item after it', async () => {
    const started: number[] = []
    const failure = new Error('item 2 failed')
    await assert.rejects(
      mapConcurrently([0, 1, 2, 3, 4, 5, 6, 7], 2, async item => {
        started.push(item)
        await nextTurn()
        if (item === 2) throw failure
        await nextTurn()
        return item
      }),
      error => error === failure,
    )
    // 0 and 1 run, then 2 and 3; 2 fails: nothing after 3 starts
    assert.deepEqual(started, [0, 1, 2, 3])
  })
})

describe('forEachConcurrently', () => {
  it('waits for the tasks in flight before it rejects', async () => {
    let settled = 0
    await assert.rejects(
      forEachConcurrently([0, 1, 2], 3, async item => {
        if (item === 0) throw new Error('first')
        await nextTurn()
        await nextTurn()
        settled += 1
      }),
      /first/,
    )
    assert.equal(settled, 2)
  })
})
