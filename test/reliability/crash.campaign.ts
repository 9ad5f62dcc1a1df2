/**
 * SIGKILL during runs, long form (npm run test:campaign): 12 kills on VHD files, 9 on VHD
 * directories, spread over the transfer, the commit and the retention merges; 9 on VHD files on a
 * pool whose deltas are read over NBD with changed block tracking (xcp-ng-8.3-nbd).
 * RELIABILITY_CRASH_SEED and RELIABILITY_CRASH_KILLS explore other seeds and counts.
 */
import { crashSuite } from './crash-suite.js'

const SEED = Number(process.env.RELIABILITY_CRASH_SEED ?? 0xdead_0001)
const KILLS = process.env.RELIABILITY_CRASH_KILLS === undefined ? undefined : Number(process.env.RELIABILITY_CRASH_KILLS)
console.log(`      SIGKILL crash campaign seed ${SEED} (replay: RELIABILITY_CRASH_SEED=${SEED})`)
crashSuite('file', SEED, KILLS ?? 12)
crashSuite('file-vhd-directory', SEED + 1, KILLS ?? 9)
crashSuite('file', SEED + 2, KILLS ?? 9, 'xcp-ng-8.3-nbd')
