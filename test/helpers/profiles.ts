/**
 * The pool profiles the lifecycle, reliability and restore suites run on: the default (the
 * oldest supported version, XenServer 6.5, no `ignore_vdis`, no CBT: the HTTP export) runs every
 * case; XCP-ng 8.3 with a network of purpose `nbd` (`ignore_vdis`, vTPM, NVRAM, deltas read over
 * NBD with changed block tracking) runs each suite's representative cases, to keep `npm test` short.
 */
import type { Simulator } from '../simulator/index.js'
import type { ProfileName } from '../simulator/profiles.js'

export const SUITE_PROFILES: readonly ProfileName[] = ['xenserver-6.5', 'xcp-ng-8.3-nbd']

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

/**
 * Cuts the next disk transfer whichever way the pool's profile reads it: the HTTP export after
 * `bytes` bytes, and on a pool that offers NBD every NBD read for longer than the client retries
 * (the caller resets the faults once the run failed).
 */
export function cutNextTransfer(sim: Simulator, bytes: number): void {
  sim.faults.cutExportAfter(bytes)
  if (sim.profile.nbdPurpose !== undefined) sim.faults.cutNbdReadAfter(Math.min(bytes, 4096), 20)
}
