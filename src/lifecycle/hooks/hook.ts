import type { VmRunContext } from '../context.js'
import type { StepFunction } from '../lifecycle.js'
import type { Step } from '../steps.js'

/** a hook of the backup lifecycle, ready to register: `lifecycle.addHook(hook.step, hook.name, hook.run)` */
export interface BackupHook {
  readonly step: Step
  readonly name: string
  readonly run: StepFunction<VmRunContext>
}
