/** The performance targets, checked and printed by the benchmark (never by a timed test). */
export interface TargetCheck {
  readonly name: string
  readonly target: string
  readonly value: number | string | null
  /** null: not measured */
  readonly pass: boolean | null
  /**
   * set when the figure cannot be judged: `floor wrong` for a time ratio over an I/O floor below 1
   * (a run that beats its floor means the floor does not measure the least work)
   */
  readonly verdict?: 'floor wrong'
}

export function check(name: string, target: string, value: number | null | undefined, passes: (v: number) => boolean): TargetCheck {
  if (value === null || value === undefined) return { name, target, value: null, pass: null }
  return { name, target, value, pass: passes(value) }
}

/** a time ratio over an I/O floor: below 1 it is never a PASS, it says the floor is wrong */
export function checkOverFloor(name: string, target: string, value: number | null | undefined, passes: (v: number) => boolean): TargetCheck {
  const checked = check(name, target, value, passes)
  if (typeof checked.value === 'number' && checked.value < 1) return { ...checked, pass: false, verdict: 'floor wrong' }
  return checked
}

/** how a check is printed: PASS, MISS, floor wrong, or n/a */
export function verdictOf(target: Pick<TargetCheck, 'pass' | 'verdict'>): string {
  if (target.verdict !== undefined) return target.verdict
  return target.pass === null ? 'n/a' : target.pass ? 'PASS' : 'MISS'
}
