/**
 * The network a restored VIF goes on, as Xen Orchestra chooses it: the network with the uuid it
 * had; else, on the VLAN it had (`$network$VLAN`), the network with its name, else the first
 * network on that VLAN; else the pool's default network (the one of the master's management
 * interface, else the first one). A restore point without the VLAN (written before it was
 * recorded) is matched by name, then the default.
 */
import { BackupError } from '../errors.js'
import type { Ref, XapiClient } from '../xapi/client.js'
import { asPool, fetchRecord, asHost } from '../xapi/records.js'
import { xapiErrorCode } from '../xapi/xapi-error.js'

type NetworkMatch = 'uuid' | 'name' | 'vlan' | 'default'

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

/** the pool's networks that have a PIF, with the VLAN of their first PIF */
async function networksWithVlan(xapi: XapiClient): Promise<{ ref: Ref; name: string; vlan: number }[]> {
  const networks = await xapi.call<Record<Ref, { name_label?: unknown; PIFs?: unknown }>>('network.get_all_records')
  const pifs = await xapi.call<Record<Ref, { VLAN?: unknown }>>('PIF.get_all_records')
  const found: { ref: Ref; name: string; vlan: number }[] = []
  for (const [ref, network] of Object.entries(networks)) {
    const first = Array.isArray(network.PIFs) ? network.PIFs[0] : undefined
    const pif = typeof first === 'string' ? pifs[first] : undefined
    if (pif === undefined) continue
    found.push({ ref, name: String(network.name_label ?? ''), vlan: Number(pif.VLAN) })
  }
  return found
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

export async function findNetwork(xapi: XapiClient, wanted: { uuid?: string; name?: string; vlan?: number }): Promise<{ ref: Ref; matchedBy: NetworkMatch }> {
  if (wanted.uuid !== undefined) {
    const ref = await byUuid(xapi, wanted.uuid)
    if (ref !== undefined) return { ref, matchedBy: 'uuid' }
  }
  if (wanted.vlan !== undefined && Number.isInteger(wanted.vlan)) {
    const onVlan = (await networksWithVlan(xapi)).filter(network => network.vlan === wanted.vlan)
    const named = onVlan.find(network => network.name === wanted.name)
    if (named !== undefined) return { ref: named.ref, matchedBy: 'name' }
    if (onVlan[0] !== undefined) return { ref: onVlan[0].ref, matchedBy: 'vlan' }
  } else if (wanted.name !== undefined) {
    const ref = await byName(xapi, wanted.name)
    if (ref !== undefined) return { ref, matchedBy: 'name' }
  }
  return { ref: await defaultNetwork(xapi), matchedBy: 'default' }
}
