/**
 * The network a restored VIF goes on: the network with the uuid it had, else one with the same
 * name, else the pool's default network (the one of the master's management interface, else
 * the first one).
 */
import { BackupError } from '../errors.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import { asPool, fetchRecord, asHost } from '../xapi/records.js'
import { xapiErrorCode } from '../xapi/xapi-error.js'

async function byUuid(xapi: XapiClient, uuid: string): Promise<Ref | undefined> {
  try {
    return await xapi.call<Ref>('network.get_by_uuid', uuid)
  } catch (error) {
    const code = xapiErrorCode(error)
    if (code === 'UUID_INVALID' || code === 'HANDLE_INVALID') {
      return undefined
    }
    throw error
  }
}

async function byName(xapi: XapiClient, name: string): Promise<Ref | undefined> {
  const refs = await xapi.call<Ref[]>('network.get_by_name_label', name)
  return refs[0]
}

export async function defaultNetwork(xapi: XapiClient): Promise<Ref> {
  const pool = await fetchRecord(xapi, 'pool', xapi.pool.$ref, asPool)
  const master = await fetchRecord(xapi, 'host', pool.master, asHost)
  const pifs = master.PIFs
  if (Array.isArray(pifs)) {
    for (const pif of pifs) {
      if (typeof pif !== 'string') continue
      const record = await xapi.getRecord<Record<string, unknown>>('PIF', pif)
      if (record.management === true && typeof record.network === 'string') {
        return record.network
      }
    }
  }
  const all = await xapi.call<Ref[]>('network.get_all')
  if (all[0] === undefined) {
    throw new BackupError('INVALID_PARAMETER', 'the pool has no network to attach the restored interfaces to')
  }
  return all[0]
}

export async function findNetwork(xapi: XapiClient, wanted: { uuid?: string; name?: string }): Promise<{ ref: Ref; matchedBy: 'uuid' | 'name' | 'default' }> {
  if (wanted.uuid !== undefined) {
    const ref = await byUuid(xapi, wanted.uuid)
    if (ref !== undefined) return { ref, matchedBy: 'uuid' }
  }
  if (wanted.name !== undefined) {
    const ref = await byName(xapi, wanted.name)
    if (ref !== undefined) return { ref, matchedBy: 'name' }
  }
  return { ref: await defaultNetwork(xapi), matchedBy: 'default' }
}
