/** The performance targets, checked and printed by the benchmark (never by a timed test). */
export interface TargetCheck {
  readonly name: string
  readonly target: string
  readonly value: number | string | null
  /** null: not measured */
  readonly pass: boolean | null
}

export function check(name: string, target: string, value: number | null | undefined, passes: (v: number) => boolean): TargetCheck {
  if (value === null || value === undefined) return { name, target, value: null, pass: null }
  return { name, target, value, pass: passes(value) }
}
