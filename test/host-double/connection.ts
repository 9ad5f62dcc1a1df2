/**
 * One API connection (a WebSocket client, or the internal connection a job runs under), with
 * xo-server's small key/value session store (`user_id`, `user_ip`).
 */
import { EventEmitter } from 'node:events'

export class Connection extends EventEmitter {
  #data = new Map<string, unknown>()
  #closed = false

  get closed(): boolean {
    return this.#closed
  }

  get<T>(key: string, defaultValue?: T): T {
    if (this.#data.has(key)) return this.#data.get(key) as T
    if (arguments.length > 1) return defaultValue as T
    throw new Error(`connection: no value for ${key}`)
  }

  set(key: string, value: unknown): void {
    this.#data.set(key, value)
  }

  unset(key: string): void {
    this.#data.delete(key)
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.emit('close')
  }
}
