/**
 * Keeps the pool database in `<data>/pool.json` for the standalone server, so that a restart
 * finds the same VMs, disks and snapshots next to their VDI files. Tasks are not kept (a restart
 * loses them, as a toolstack restart does). Writes are debounced and atomic (temporary + rename).
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

import type { ObjectStore, PersistedObject } from './object-store.js'

const SAVE_DELAY_MS = 200
const TRANSIENT_CLASSES = ['task']

export function databasePath(dataDir: string): string {
  return join(dataDir, 'pool.json')
}

/** The saved objects, or undefined when nothing was saved yet. */
export async function loadDatabase(dataDir: string): Promise<PersistedObject[] | undefined> {
  let text: string
  try {
    text = await readFile(databasePath(dataDir), 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const parsed = JSON.parse(text) as { objects?: PersistedObject[] }
  if (!Array.isArray(parsed.objects)) throw new Error(`${databasePath(dataDir)} holds no objects`)
  return parsed.objects
}

export class DatabaseSaver {
  readonly #store: ObjectStore
  readonly #path: string
  #timer: NodeJS.Timeout | undefined
  #saving: Promise<void> = Promise.resolve()
  #closed = false

  constructor(store: ObjectStore, dataDir: string) {
    this.#store = store
    this.#path = databasePath(dataDir)
    store.onChange(() => this.#schedule())
  }

  /** Saves now (cancelling a pending save); resolves once the file is written. */
  async saveNow(): Promise<void> {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#saving = this.#saving.then(() => this.#save())
    await this.#saving
  }

  /** Saves now if a save is pending; resolves once the file is written. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) return this.saveNow()
    await this.#saving
  }

  /** Writes what is pending and stops saving. */
  async close(): Promise<void> {
    await this.flush()
    this.#closed = true
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#saving = this.#saving.then(() => this.#save()).catch(error => console.error('saving the pool database:', error))
    }, SAVE_DELAY_MS)
  }

  async #save(): Promise<void> {
    const temporary = `${this.#path}.tmp`
    await writeFile(temporary, JSON.stringify({ objects: this.#store.dump(TRANSIENT_CLASSES) }))
    await rename(temporary, this.#path)
  }
}
