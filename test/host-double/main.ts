/**
 * npm run host -- --port 9000 --pool http://127.0.0.1:4443 [--pool-user root --pool-password secret]
 *                 [--remote file:///DIR]... [--data-dir DIR] [--plugin-dir DIR]
 *
 * Loads the built plugin (default: the repository root, dist/index.js) as xo-server 5.207 does,
 * enables it with an empty configuration, and serves the API until killed.
 */
import { parseArgs } from 'node:util'
import { startHostDouble } from './start.js'

const USAGE = `usage: npm run host -- [--port 9000] [--pool URL]... [--pool-user root] [--pool-password secret]
                      [--remote URL]... [--data-dir DIR] [--plugin-dir DIR]`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '9000' },
      pool: { type: 'string', multiple: true, default: [] },
      'pool-user': { type: 'string', default: 'root' },
      'pool-password': { type: 'string', default: 'secret' },
      remote: { type: 'string', multiple: true, default: [] },
      'data-dir': { type: 'string' },
      'plugin-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) {
    console.log(USAGE)
    return
  }
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port: ${values.port}\n${USAGE}`)

  const host = await startHostDouble({
    port,
    pools: values.pool.map(url => ({ url, user: values['pool-user'], password: values['pool-password'] })),
    remotes: values.remote.map((url, i) => ({ name: `remote${i + 1}`, url })),
    dataDir: values['data-dir'],
    pluginDir: values['plugin-dir'],
  })
  const { app } = host
  const plugin = host.pluginId === undefined ? undefined : await app.getPlugin(host.pluginId)
  console.log(`xo-server host double listening on ${host.url}`)
  console.log(`  users: admin@admin.net / admin (admin), user@example.net / user (no permission)`)
  console.log(`  data dir: ${host.dataDir}`)
  if (plugin !== undefined) console.log(`  plugin: ${plugin.id} ${plugin.version} (${plugin.loaded ? 'loaded' : 'NOT loaded: configure it with plugin.configure'})`)
  for (const server of app.getAllXenServers()) console.log(`  pool: ${server.host} ${server.status}${server.poolId === undefined ? '' : ` (pool ${server.poolId})`}`)
  for (const remote of await app.getAllRemotes()) console.log(`  remote: ${remote.id} ${remote.name} ${remote.url}`)
  console.log(`  API methods: ${app.apiMethodNames.length} (system.getMethodsInfo lists them)`)

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    console.log(`${signal}: closing`)
    host.close().then(
      () => process.exit(0),
      error => {
        console.error(error)
        process.exit(1)
      }
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

main().catch(error => {
  console.error(error instanceof Error ? error.message : error)
  process.exit(1)
})
