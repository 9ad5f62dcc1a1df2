/**
 * A JSON document kept in one file of the data dir: read once, written atomically (temporary
 * file + rename), writes serialized. Stands in for the redis/LevelDB collections of xo-server.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

export class JsonFile<T> {
  readonly path: string
  #pending: Promise<void> = Promise.resolve()

  constructor(path: string) {
    this.path = path
  }

  async read(defaultValue: T): Promise<T> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as T
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return defaultValue
      throw error
    }
  }

  /** writes `value` (serialized now, so later mutations do not leak into this write) */
  write(value: T): Promise<void> {
    const text = JSON.stringify(value, null, 2) + '\n'
    const run = async (): Promise<void> => {
      await mkdir(dirname(this.path), { recursive: true })
      const tmp = `${this.path}.${process.pid}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, this.path)
    }
    const next = this.#pending.then(run, run)
    this.#pending = next.catch(() => {})
    return next
  }

  /** resolves when every write started so far has settled */
  flush(): Promise<void> {
    return this.#pending
  }
}
