/**
 * Streams the content of a VDI out of XAPI as a VHD (`GET /export_raw_vdi/?format=vhd`): a
 * dynamic VHD of the whole disk, or with `base` a differencing VHD of only the blocks that
 * changed since that snapshot. Nothing is buffered: the caller pipes the stream on.
 */
import type { Readable } from 'node:stream'
import type { Ref, XapiClient, XapiHttpResponse } from './client.js'

export interface VdiExport {
  readonly stream: Readable
  /** settles with the XAPI task of the export; rejects when XAPI reports a failure */
  readonly task: Promise<unknown>
}

function isHttpResponse(response: Awaited<ReturnType<XapiClient['getResource']>>): response is XapiHttpResponse {
  return 'body' in response && typeof response.body === 'object' && response.body !== null && typeof response.body.pipe === 'function'
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
  return { stream, task }
}
