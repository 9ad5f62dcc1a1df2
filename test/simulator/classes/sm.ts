import type { ClassSpec } from '../xapi-types.js'

export const sm: ClassSpec = {
  name: 'SM',
  defaults: () => ({
    uuid: '',
    name_label: '',
    name_description: '',
    type: '',
    vendor: '',
    copyright: '',
    version: '1.0',
    required_api_version: '1.0',
    configuration: {},
    capabilities: [],
    features: {},
    other_config: {},
    driver_filename: '',
    required_cluster_stack: [],
  }),
}
