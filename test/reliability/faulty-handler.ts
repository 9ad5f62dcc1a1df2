/**
 * A remote handler that fails on demand: every call of a writing method goes through `before`,
 * which may throw (a full disk, a read-only remote) or act on the remote behind the handler's
 * back (remove its folder). Reads pass through untouched.
 */
import type { RemoteHandler } from '../../src/repository/remote-handler.js'

export const WRITING_METHODS = [
  'outputStream',
  'outputFile',
  'writeFile',
  'write',
  'rename',
  'copy',
  'unlink',
  'rmtree',
  'mktree',
  'truncate',
] as const
export type WritingMethod = (typeof WRITING_METHODS)[number]

export interface WriteCall {
  readonly method: WritingMethod
  /** the path written (the first argument; for `write`, the file or descriptor's path) */
  readonly path: string
  /** 1 for the first writing call through this handler */
  readonly index: number
}

export function fsError(code: string, message: string, path: string): Error & { code: string; path: string } {
  return Object.assign(new Error(`${code}: ${message}, '${path}'`), { code, path })
}

function pathOf(arg: unknown): string {
  if (typeof arg === 'string') return arg
  if (typeof arg === 'object' && arg !== null && 'path' in arg) return String((arg as { path: unknown }).path)
  return String(arg)
}

export function faultyHandler(inner: RemoteHandler, before: (call: WriteCall) => void | Promise<void>): RemoteHandler {
  const writing = new Set<string>(WRITING_METHODS)
  let index = 0
  return new Proxy(inner, {
    get(target, property) {
      // the handler's getters and methods use private fields: they run on the handler itself
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      const method = value as (...args: unknown[]) => unknown
      if (typeof property !== 'string' || !writing.has(property)) return method.bind(target)
      return async (...args: unknown[]) => {
        await before({ method: property as WritingMethod, path: pathOf(args[0]), index: ++index })
        return method.apply(target, args)
      }
    },
  })
}
