/**
 * The CLI prints URLs and error messages; none of them may show a password. Known secrets are
 * masked wherever they appear, and so are the credentials inside any URL.
 */
const MASK = '***'

const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*)(?::[^\s@]*)?@/gi

export class SecretMasker {
  readonly #secrets = new Set<string>()

  add(secret: string | undefined): void {
    if (secret !== undefined && secret.length > 0) {
      this.#secrets.add(secret)
      this.#secrets.add(encodeURIComponent(secret))
    }
  }

  /** the secrets of a URL (its password), so that they are masked wherever they show up */
  addUrl(url: string): void {
    try {
      const parsed = new URL(url)
      this.add(decodeURIComponent(parsed.password))
      this.add(parsed.searchParams.get('secretAccessKey') ?? undefined)
    } catch {
      // not a URL the WHATWG parser reads: masked by pattern only
    }
  }

  mask(text: string): string {
    let masked = text.replace(URL_CREDENTIALS, (_match, scheme: string, user: string) => `${scheme}${user === '' ? '' : `${user}:`}${MASK}@`)
    // longest first, so that a secret containing another one is masked whole
    for (const secret of [...this.#secrets].sort((a, b) => b.length - a.length)) masked = masked.split(secret).join(MASK)
    return masked
  }
}
