/** An error answered in XAPI's format: a code (the JSON-RPC `message`) and string parameters. */
export class XapiFault extends Error {
  readonly code: string
  readonly params: string[]

  constructor(code: string, params: readonly unknown[] = []) {
    const strings = params.map(String)
    super(`${code}(${strings.join(', ')})`)
    this.code = code
    this.params = strings
  }
}

export const handleInvalid = (cls: string, ref: unknown): XapiFault => new XapiFault('HANDLE_INVALID', [cls, ref])
