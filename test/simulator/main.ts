/**
 * npm run simulator -- --port 4443 --data DIR [--user root] [--password secret]
 *                      [--profile xenserver-6.5] [--empty] [--fresh]
 * Serves a simulated pool until killed. The pool is saved in DIR/pool.json and found again by the
 * next start with the same DIR, unless --fresh (which seeds a new one).
 */
import { existsSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

import { databasePath } from './persistence.js'
import { DEFAULT_PROFILE, profileNamed, PROFILES } from './profiles.js'
import { Simulator } from './simulator.js'

const USAGE =
  'usage: npm run simulator -- --port 4443 --data DIR [--user root] [--password secret] ' +
  `[--profile ${DEFAULT_PROFILE}] [--empty] [--fresh]  (profiles: ${Object.keys(PROFILES).join(', ')})`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '4443' },
      data: { type: 'string' },
      user: { type: 'string', default: 'root' },
      password: { type: 'string', default: 'secret' },
      profile: { type: 'string', default: DEFAULT_PROFILE },
      empty: { type: 'boolean', default: false },
      fresh: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help || values.data === undefined) {
    console.error(USAGE)
    process.exitCode = values.help ? 0 : 2
    return
  }
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`)
  const dataDir = resolve(values.data)
  await mkdir(dataDir, { recursive: true })
  if (values.fresh) await rm(databasePath(dataDir), { force: true })
  const restored = existsSync(databasePath(dataDir))

  const sim = await Simulator.start({
    dataDir,
    port,
    user: values.user,
    password: values.password,
    profile: profileNamed(values.profile).name,
    inventory: values.empty ? 'empty' : 'default',
    persist: true,
  })
  console.log(`simulated ${sim.profile.productBrand} ${sim.profile.productVersion} pool (profile ${sim.profile.name}) listening on ${sim.url}${restored ? ` (restored from ${databasePath(dataDir)})` : ''}`)
  console.log(`credentials: ${sim.user} / ${sim.password}`)
  console.log(`VDI files: ${dataDir}/vdis/<VDI uuid>.raw`)
  for (const vm of sim.all('VM').filter(vm => vm.is_control_domain !== true)) {
    const disks = sim.vdisOf(vm.uuid).map(vdi => `${vdi.name_label} (${vdi.uuid})`)
    console.log(`VM ${vm.name_label} ${vm.uuid}: ${disks.join(', ')}`)
  }

  const stop = (): void => {
    void sim.close().then(() => process.exit(0))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch(error => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
