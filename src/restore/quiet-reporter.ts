import type { RunReporter } from '../lifecycle/job.js'

/** a reporter that reports nothing, for callers that do not follow progress */
export const quietReporter: RunReporter = {
  info() {},
  warning() {},
  child: () => quietReporter,
  progress() {},
  end() {},
}
