import { NULL_REF, type ClassSpec } from '../xapi-types.js'

export const vbd: ClassSpec = {
  name: 'VBD',
  defaults: () => ({
    uuid: '',
    allowed_operations: [],
    current_operations: {},
    VM: NULL_REF,
    VDI: NULL_REF,
    device: '',
    userdevice: '',
    bootable: false,
    mode: 'RW',
    type: 'Disk',
    unpluggable: true,
    storage_lock: false,
    empty: false,
    other_config: {},
    currently_attached: false,
    status_code: 0,
    status_detail: '',
    runtime_properties: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
    qos_supported_algorithms: [],
    metrics: NULL_REF,
  }),
}
