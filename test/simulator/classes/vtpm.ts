import { NULL_REF, type ClassSpec } from '../xapi-types.js'

export const vtpm: ClassSpec = {
  name: 'VTPM',
  defaults: () => ({
    uuid: '',
    allowed_operations: [],
    current_operations: {},
    VM: NULL_REF,
    backend: NULL_REF,
    persistence_backend: 'xapi',
    is_unique: false,
    is_protected: false,
  }),
}
