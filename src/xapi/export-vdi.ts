/**
 * Streams the content of a VDI out of XAPI as a VHD (`GET /export_raw_vdi/?format=vhd`): a
 * dynamic VHD of the whole disk, or with `base` a differencing VHD of only the blocks that
 * changed since that snapshot. Nothing is buffered: the caller pipes the stream on.
 */
import type { Readable } from 'node:stream'
import { BackupError } from '../errors.js'
import type { Ref, XapiClient, XapiHttpResponse } from './client.js'

export interface VdiExport {
  readonly stream: Readable
  /** settles with the XAPI task of the export; rejects when XAPI reports a failure */
  readonly task: Promise<unknown>
}

function isHttpResponse(response: Awaited<ReturnType<XapiClient['getResource']>>): response is XapiHttpResponse {
  return 'body' in response && typeof response.body === 'object' && response.body !== null && typeof response.body.pipe === 'function'
}

/** the first `n` bytes of a stream (fewer if it ends before), left in it for the next reader */
async function peek(stream: Readable, n: number): Promise<Buffer> {
  const prefix = await new Promise<Buffer>((resolve, reject) => {
    const finish = (error: Error | undefined, value?: Buffer): void => {
      stream.off('readable', onReadable).off('end', onEnd).off('error', finish)
      if (error === undefined) {
        resolve(value ?? Buffer.alloc(0))
      } else {
        reject(error)
      }
    }
    const onReadable = (): void => {
      const chunk = (stream.read(n) as Buffer | null) ?? (stream.readableEnded ? (stream.read() as Buffer | null) : null)
      if (chunk !== null) {
        finish(undefined, chunk)
      }
    }
    const onEnd = (): void => finish(undefined, (stream.read() as Buffer | null) ?? Buffer.alloc(0))
    stream.on('readable', onReadable).on('end', onEnd).on('error', finish)
    onReadable()
  })
  if (prefix.length > 0) {
    stream.unshift(prefix)
  }
  return prefix
}

/** what an error page says, as one line of text */
function pageText(page: string): string {
  const body = page.slice(page.search(/\r?\n\r?\n/) + 1)
  return body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 500)
}

/**
 * XAPI sometimes answers an export `200 OK` with a whole HTTP error answer (an HTML page) as its
 * body (xen-api issue 4603); a VHD starts with its footer cookie `conectix`. Throws a clear
 * error with what the page says instead of letting a VHD parser choke on it.
 */
async function assertNotAnErrorPage(stream: Readable, vdi: Ref): Promise<void> {
  const prefix = await peek(stream, 8)
  const head = prefix.toString('latin1')
  if (!head.startsWith('HTTP/') && !head.startsWith('<')) {
    return
  }
  let page = ''
  for await (const chunk of stream) {
    page += (chunk as Buffer).toString('utf8')
    if (page.length >= 4096) {
      break
    }
  }
  stream.destroy()
  throw new BackupError('TRANSFER_FAILED', `XAPI answered the export of VDI ${vdi} with an error page instead of a VHD: ${pageText(page)}`, {
    vdi,
  })
}

export async function exportVdiAsVhd(xapi: XapiClient, vdi: Ref, opts: { base?: Ref } = {}): Promise<VdiExport> {
  const query: Record<string, string> = { format: 'vhd', vdi }
  if (opts.base !== undefined) {
    query.base = opts.base
  }
  const response = await xapi.getResource('/export_raw_vdi/', { query, task: true })
  const stream = isHttpResponse(response) ? response.body : response
  const task = response.task ?? Promise.resolve(undefined)
  // observed by the caller after the stream; never an unhandled rejection meanwhile
  task.catch(() => {})
  await assertNotAnErrorPage(stream, vdi)
  return { stream, task }
}
