/** Merge crash and resume, long form (npm run test:campaign): SIGKILL before every change. */
import { mergeCrashSuite } from './merge-crash-suite.js'

mergeCrashSuite({ allPoints: true, randomRounds: 3 })
