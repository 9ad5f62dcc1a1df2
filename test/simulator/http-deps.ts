/** What the HTTP handlers reach: the pool, the RPC dispatcher, tasks and armed faults. */
import type { ServerResponse } from 'node:http'

import type { ArmedFaults } from './faults.js'
import type { PoolModel } from './pool-model.js'
import type { RpcDispatcher } from './rpc.js'
import type { Tasks } from './tasks.js'
import type { DiskFile } from './vdi-export.js'
import { handleInvalid, XapiFault } from './xapi-fault.js'

export interface ServerDeps {
  readonly model: PoolModel
  readonly rpc: RpcDispatcher
  readonly tasks: Tasks
  readonly faults: ArmedFaults
}

/** The uuid and size of a VDI named by ref (or uuid) in a query. */
export function diskOfVdi(model: PoolModel, refOrUuid: string | null): DiskFile {
  const ref = refOrUuid === null ? undefined : model.store.resolve('VDI', refOrUuid)
  if (ref === undefined) throw handleInvalid('VDI', refOrUuid)
  const vdi = model.store.get('VDI', ref)
  // a snapshot whose data was destroyed keeps only its CBT metadata: nothing to read
  if (vdi.type === 'cbt_metadata') throw new XapiFault('VDI_INCOMPATIBLE_TYPE', [ref, 'cbt_metadata'])
  const uuid = String(vdi.uuid)
  return { uuid, virtualSize: Number(vdi.virtual_size) }
}

/** Fails the task and answers 500, or cuts the answer if it is under way. */
export function fail(deps: ServerDeps, res: ServerResponse, task: string | undefined, error: unknown): void {
  const fault = error instanceof XapiFault ? error : new XapiFault('VDI_IO_ERROR', [String(error)])
  if (task !== undefined) deps.tasks.fail(task, fault)
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain' })
    res.end(`${fault.code}(${fault.params.join(', ')})`)
  } else {
    res.destroy()
  }
}

