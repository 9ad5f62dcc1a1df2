import { NULL_REF, type ClassSpec } from '../xapi-types.js'
import { XAPI_EPOCH } from '../xapi-date.js'

export const task: ClassSpec = {
  name: 'task',
  defaults: () => ({
    uuid: '',
    name_label: '',
    name_description: '',
    allowed_operations: ['cancel'],
    current_operations: {},
    created: XAPI_EPOCH,
    finished: XAPI_EPOCH,
    status: 'pending',
    resident_on: NULL_REF,
    progress: 0,
    type: '',
    result: '',
    error_info: [],
    other_config: {},
    subtask_of: NULL_REF,
    subtasks: [],
    backtrace: '()',
  }),
}
