/**
 * Uploads a VHD stream into an existing VDI (`PUT /import_raw_vdi/?format=vhd`). XAPI does not
 * accept chunked uploads: the stream's length is announced to the client.
 */
import type { Readable } from 'node:stream'
import type { Ref, XapiClient } from './client.js'

export async function importVhdIntoVdi(xapi: XapiClient, vdi: Ref, input: { stream: Readable; length: number }): Promise<void> {
  // xen-api reads `length` off the body to send a content-length
  const body = Object.assign(input.stream, { length: input.length })
  await xapi.putResource(body, '/import_raw_vdi/', { query: { format: 'vhd', vdi }, task: true })
}
