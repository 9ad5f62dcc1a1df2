import { NULL_REF, type ClassSpec } from '../xapi-types.js'

export const pbd: ClassSpec = {
  name: 'PBD',
  defaults: () => ({
    uuid: '',
    host: NULL_REF,
    SR: NULL_REF,
    device_config: {},
    currently_attached: false,
    other_config: {},
  }),
}
