import type { ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const hostMetrics: ClassSpec = {
  name: 'host_metrics',
  defaults: () => ({
    uuid: '',
    memory_total: 0,
    memory_free: 0,
    live: false,
    last_updated: XAPI_EPOCH,
    other_config: {},
  }),
}
