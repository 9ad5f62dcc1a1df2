import type { ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const pifMetrics: ClassSpec = {
  name: 'PIF_metrics',
  defaults: () => ({
    uuid: '',
    io_read_kbs: 0,
    io_write_kbs: 0,
    carrier: false,
    vendor_id: '',
    vendor_name: '',
    device_id: '',
    device_name: '',
    speed: 0,
    duplex: false,
    pci_bus_path: '',
    last_updated: XAPI_EPOCH,
    other_config: {},
  }),
}
