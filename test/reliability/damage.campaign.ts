/** The damage campaign, long form (npm run test:campaign): see damage-suite.ts. */
import { damageSuite } from './damage-suite.js'

const seed = Number(process.env['DAMAGE_SEED'] ?? 0xda3a9e)
const cases = Number(process.env['DAMAGE_CASES'] ?? 15)

damageSuite({ remotes: ['file', 'file-vhd-directory'], cases, seed })
damageSuite({ remotes: ['s3'], cases: Math.max(1, Math.round(cases / 3)), seed })
