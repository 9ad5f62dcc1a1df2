/**
 * node build/bench/plain-list.js ROOT
 *
 * The plain way to list a remote's restore points: every `xo-vm-backups/<vm>/*.json` read and
 * parsed, one after the other, with `fs` only. Prints how many it read. The listing benchmark's
 * baseline for the DR CLI's `list` (both are a process started by the user).
 */
import { plainListing } from './tasks/plain-listing.js'

const root = process.argv[2]
if (root === undefined) throw new Error('usage: plain-list.js ROOT')
process.stdout.write(`${(await plainListing(root)).length} restore points\n`)
