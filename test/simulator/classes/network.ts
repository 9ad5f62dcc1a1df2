import type { ClassSpec } from '../xapi-types.js'

export const network: ClassSpec = {
  name: 'network',
  defaults: () => ({
    uuid: '',
    name_label: '',
    name_description: '',
    allowed_operations: [],
    current_operations: {},
    VIFs: [],
    PIFs: [],
    MTU: 1500,
    other_config: {},
    bridge: '',
    managed: true,
    blobs: {},
    tags: [],
    default_locking_mode: 'unlocked',
    assigned_ips: {},
    purpose: [],
  }),
}
