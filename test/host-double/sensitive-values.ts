/**
 * Secrets in configurations and API params, as xo-server treats them: string values of
 * properties named `token`, `passphrase`, `encryptionKey` or matching /password/i are replaced
 * by a fixed marker in what is shown; a configuration sent back with the marker keeps the
 * stored secret (`merge`).
 */
export const OBFUSCATED_VALUE = 'obfuscated-q3oi6d9X8uenGvdLnHk2'

const SENSITIVE = [/^token$/, /^passphrase$/, /password/i, /^encryptionKey$/]

const isSensitive = (name: string | number | undefined): boolean =>
  typeof name === 'string' && SENSITIVE.some(pattern => pattern.test(name))

export function replaceSensitive<T>(value: T, replacement: string): T {
  const helper = (value: unknown, name: string | number | undefined): unknown => {
    if (typeof value === 'string' && isSensitive(name)) return replacement
    if (typeof value !== 'object' || value === null) return value
    if (Array.isArray(value)) return value.map((item, i) => helper(item, i))
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, helper(item, key)]))
  }
  return helper(value, undefined) as T
}

export function obfuscate<T>(value: T): T {
  return replaceSensitive(value, OBFUSCATED_VALUE)
}

/** `newValue` where every obfuscated marker is replaced by the matching part of `oldValue` */
export function mergeSensitive(newValue: unknown, oldValue: unknown): unknown {
  if (newValue === OBFUSCATED_VALUE) return oldValue
  if (
    newValue === null ||
    oldValue === null ||
    typeof newValue !== 'object' ||
    typeof oldValue !== 'object' ||
    Array.isArray(newValue) !== Array.isArray(oldValue)
  ) {
    return newValue
  }
  const old = oldValue as Record<string, unknown>
  if (Array.isArray(newValue)) return newValue.map((item, i) => mergeSensitive(item, old[i]))
  return Object.fromEntries(Object.entries(newValue).map(([key, item]) => [key, mergeSensitive(item, old[key])]))
}
