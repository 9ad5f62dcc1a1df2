import type { ClassSpec } from '../xapi-types.js'

export const sr: ClassSpec = {
  name: 'SR',
  defaults: () => ({
    uuid: '',
    name_label: '',
    name_description: '',
    allowed_operations: [],
    current_operations: {},
    VDIs: [],
    PBDs: [],
    virtual_allocation: 0,
    physical_utilisation: 0,
    physical_size: 0,
    type: 'ext',
    content_type: 'user',
    shared: false,
    other_config: {},
    tags: [],
    sm_config: {},
    blobs: {},
    local_cache_enabled: false,
    introduced_by: 'OpaqueRef:NULL',
    clustered: false,
    is_tools_sr: false,
  }),
}
