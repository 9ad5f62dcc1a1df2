/** The damage campaign, quick form for npm test (the long form is damage.campaign.ts): see damage-suite.ts. */
import { damageSuite } from './damage-suite.js'

const seed = Number(process.env['DAMAGE_SEED'] ?? 0x5eed)
const cases = Number(process.env['DAMAGE_CASES'] ?? 1)

// a data block of a middle delta (VHD files), the block table of the newest delta (VHD directories)
damageSuite({ remotes: ['file'], cases, seed, fixed: [{ kind: 'data', target: 'middle', retention: 2 }] })
damageSuite({ remotes: ['file-vhd-directory'], cases, seed, fixed: [{ kind: 'bat', target: 'newest', retention: 2 }] })
