/** Run `task` over `items` with at most `concurrency` of them in flight; stops at the first error. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0
  let failed = false
  async function worker(): Promise<void> {
    while (!failed && next < items.length) {
      const index = next++
      try {
        await task(items[index]!, index)
      } catch (error) {
        failed = true
        throw error
      }
    }
  }
  const workers: Promise<void>[] = []
  for (let i = 0; i < Math.min(concurrency, items.length); i++) {
    workers.push(worker())
  }
  const results = await Promise.allSettled(workers)
  for (const result of results) {
    if (result.status === 'rejected') {
      throw result.reason
    }
  }
}

/** `task` of each of `items`, at most `concurrency` in flight, the results in the order of `items` */
export async function mapConcurrently<T, R>(items: readonly T[], concurrency: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  await forEachConcurrently(items, concurrency, async (item, index) => {
    results[index] = await task(item, index)
  })
  return results
}
