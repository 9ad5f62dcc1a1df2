import type { ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const vmMetrics: ClassSpec = {
  name: 'VM_metrics',
  defaults: () => ({
    uuid: '',
    memory_actual: 0,
    VCPUs_number: 0,
    VCPUs_utilisation: {},
    VCPUs_CPU: {},
    VCPUs_params: {},
    VCPUs_flags: {},
    state: [],
    start_time: XAPI_EPOCH,
    install_time: XAPI_EPOCH,
    last_updated: XAPI_EPOCH,
    other_config: {},
    hvm: true,
    nested_virt: false,
    nomigrate: false,
    current_domain_type: 'unspecified',
  }),
}
