import { NULL_REF, type ClassSpec } from '../xapi-types.js'

export const console: ClassSpec = {
  name: 'console',
  defaults: () => ({
    uuid: '',
    protocol: 'rfb',
    location: '',
    VM: NULL_REF,
    other_config: {},
  }),
}
