/**
 * Keeps secrets out of what the plugin shows: run results, task logs, run history and errors.
 * Credentials can only reach them inside text (a URL in an error message from a storage or
 * network layer) or as fields of data objects; both are masked.
 */
const MASK = '***'

// scheme://user:password@host → scheme://user:***@host, and scheme://token@host → scheme://***@host
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*)(?::[^\s@]*)?@/gi
// password=..., secret: "...", token=... in free text
const KEY_VALUE = /\b(password|passwd|secret|token|secretAccessKey|accessKey|credentials?)(["']?\s*[=:]\s*["']?)([^\s"'&,;}]+)/gi

const SECRET_KEY = /^(password|passwd|pass|secret|token|secretAccessKey|accessKey|credentials?|url)$/i

export function redactText(text: string): string {
  return text
    .replace(URL_CREDENTIALS, (_match, scheme: string, user: string) => `${scheme}${user === '' ? '' : `${user}:`}${MASK}@`)
    .replace(KEY_VALUE, (_match, key: string, separator: string) => `${key}${separator}${MASK}`)
}

/** a JSON-safe copy of `value` with secret fields masked and every string redacted */
export function redactValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactText(value)
  if (value instanceof Error) return redactError(value)
  if (value === null || typeof value !== 'object' || depth > 20) return value
  if (Array.isArray(value)) return value.map(item => redactValue(item, depth + 1))
  const copy: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(value)) {
    copy[key] = SECRET_KEY.test(key) && typeof field === 'string' ? (key.toLowerCase() === 'url' ? redactText(field) : MASK) : redactValue(field, depth + 1)
  }
  return copy
}

export interface RedactedError {
  readonly name: string
  readonly code?: string
  readonly message: string
}

function codeOf(error: Error): string | undefined {
  const code: unknown = Reflect.get(error, 'code')
  return typeof code === 'string' ? code : undefined
}

export function redactError(error: unknown): RedactedError {
  if (error instanceof Error) {
    const code = codeOf(error)
    return { name: error.name, ...(code === undefined ? {} : { code }), message: redactText(error.message) }
  }
  return { name: 'Error', message: redactText(String(error)) }
}

/** the same error with its message redacted, keeping its class and code (for API callers) */
export function sanitizeError(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(redactText(String(error)))
  const message = redactText(error.message)
  if (message !== error.message) {
    error.message = message
  }
  if (error.stack !== undefined) error.stack = redactText(error.stack)
  return error
}
