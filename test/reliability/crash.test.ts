/**
 * SIGKILL during runs, quick form for npm test: one kill in each phase (transfer, commit,
 * retention) on VHD files and on VHD directories. The long form is crash.campaign.ts.
 * RELIABILITY_CRASH_SEED replays another seed.
 */
import { crashSuite } from './crash-suite.js'

const SEED = Number(process.env.RELIABILITY_CRASH_SEED ?? 0xdead_0001)
console.log(`      SIGKILL crash seed ${SEED} (replay: RELIABILITY_CRASH_SEED=${SEED})`)
crashSuite('file', SEED, 3)
crashSuite('file-vhd-directory', SEED + 1, 3)
