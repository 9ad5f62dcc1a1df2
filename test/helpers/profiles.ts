/**
 * The pool profiles the lifecycle, reliability and restore suites run on: the default (the
 * oldest supported version, XenServer 6.5, no `ignore_vdis`) runs every case; XCP-ng 8.3
 * (`ignore_vdis`, vTPM, NVRAM) runs each suite's representative cases, to keep `npm test` short.
 */
import type { ProfileName } from '../simulator/profiles.js'

export const SUITE_PROFILES: readonly ProfileName[] = ['xenserver-6.5', 'xcp-ng-8.3']

export interface ProfileSuite {
  readonly profile: ProfileName
  /** true on the first profile: every case runs */
  readonly full: boolean
  /** `it`, or nothing on the other profiles: for the cases that are not representative */
  readonly fullOnly: (title: string, fn: Mocha.Func) => void
}

/** declares `suite` once per profile */
export function onProfiles(suite: (on: ProfileSuite) => void, profiles: readonly ProfileName[] = SUITE_PROFILES): void {
  profiles.forEach((profile, index) => {
    const full = index === 0
    suite({ profile, full, fullOnly: (title, fn) => (full ? void it(title, fn) : undefined) })
  })
}
