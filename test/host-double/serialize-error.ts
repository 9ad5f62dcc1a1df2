/** An error as plain JSON data (logs, task results, API error data): name, message, code, data, stack. */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  const { name, message, stack } = error
  const { code, data } = error as Error & { code?: unknown; data?: unknown }
  return { name, message, code, data, stack }
}
