/** Merge crash and resume, quick form for npm test (the long form is merge-crash.campaign.ts). */
import { mergeCrashSuite } from './merge-crash-suite.js'

mergeCrashSuite({ allPoints: process.env['MERGE_CRASH_ALL'] === '1', randomRounds: 1 })
