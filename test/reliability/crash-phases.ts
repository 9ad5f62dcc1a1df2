/** The phases of a backup run as seen from the remote, for the crash tests and their child. */
export type Phase = 'start' | 'transfer' | 'commit' | 'retention'

export interface Change {
  readonly method: string
  readonly path: string
}

/** die right before the `nth` change (1-based) of `phase`; without them, run to completion */
export interface CrashGo {
  readonly phase?: Phase
  readonly nth?: number
}

/** where in a run the last of `changes` belongs (VHDs written, then the metadata, then retention) */
export function phaseOf(changes: readonly Change[]): Phase {
  const last = changes.at(-1)
  if (last === undefined) return 'start'
  // the metadata is written to a temporary file, then renamed into place: the commit
  const committed = changes.slice(0, -1).some(change => change.method === 'rename' && /\.json\.[0-9a-f]+\.tmp$/.test(change.path))
  if (committed) return 'retention'
  if (last.path.includes('.json')) return 'commit'
  if (last.path.includes('/vdis/')) return 'transfer'
  return 'start'
}
