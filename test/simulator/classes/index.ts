/** Every class the simulated pool serves, by wire name. */
import type { ClassSpec } from '../xapi-types.js'
import { console } from './console.js'
import { host } from './host.js'
import { hostMetrics } from './host-metrics.js'
import { message } from './message.js'
import { network } from './network.js'
import { pbd } from './pbd.js'
import { pif } from './pif.js'
import { pifMetrics } from './pif-metrics.js'
import { pool } from './pool.js'
import { sm } from './sm.js'
import { sr } from './sr.js'
import { task } from './task.js'
import { vbd } from './vbd.js'
import { vdi } from './vdi.js'
import { vif } from './vif.js'
import { vm } from './vm.js'
import { vmGuestMetrics } from './vm-guest-metrics.js'
import { vmMetrics } from './vm-metrics.js'
import { vtpm } from './vtpm.js'

export const CLASSES: ReadonlyMap<string, ClassSpec> = new Map(
  [pool, host, hostMetrics, sr, pbd, sm, vm, vmMetrics, vmGuestMetrics, vbd, vdi, vif, vtpm, console, network, pif, pifMetrics, task, message].map(
    spec => [spec.name, spec]
  )
)

/** The spec of a class by wire name, case-insensitively (events carry lowercase names). */
export function classSpec(name: string): ClassSpec | undefined {
  const exact = CLASSES.get(name)
  if (exact !== undefined) return exact
  const lc = name.toLowerCase()
  for (const spec of CLASSES.values()) if (spec.name.toLowerCase() === lc) return spec
  return undefined
}
