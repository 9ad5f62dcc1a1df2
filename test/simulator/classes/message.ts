import type { ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const message: ClassSpec = {
  name: 'message',
  defaults: () => ({
    uuid: '',
    name: '',
    priority: 0,
    cls: 'VM',
    obj_uuid: '',
    timestamp: XAPI_EPOCH,
    body: '',
  }),
}
