import type { ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const vmGuestMetrics: ClassSpec = {
  name: 'VM_guest_metrics',
  defaults: () => ({
    uuid: '',
    os_version: {},
    netbios_name: {},
    PV_drivers_version: {},
    PV_drivers_up_to_date: false,
    memory: {},
    disks: {},
    networks: {},
    other: {},
    last_updated: XAPI_EPOCH,
    other_config: {},
    live: false,
    can_use_hotplug_vbd: 'unspecified',
    can_use_hotplug_vif: 'unspecified',
    PV_drivers_detected: false,
  }),
}
