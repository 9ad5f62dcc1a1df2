/**
 * The built-in API methods the host double serves besides the plugin's: the subset of
 * xo-server's `session.*`, `remote.*`, `server.*`, `plugin.*`, `job.*`, `schedule.*` and
 * `backupNg.getLogs` that tests and the demo use, plus `task.getAll`/`task.get` for the task
 * logs (xo-server shows those at REST `/rest/v0/tasks`).
 */
import type { ApiMethod, ApiMethods } from './api.js'
import { invalidCredentials } from './api-errors.js'
import type { XoApp } from './app.js'

type Params = Record<string, unknown>

/** builds an API method with its XO metadata */
function method<P extends Params>(
  meta: Pick<ApiMethod, 'description' | 'params' | 'permission'>,
  fn: (this: XoApp, params: P) => unknown
): ApiMethod {
  return Object.assign(fn as ApiMethod, meta)
}

const admin = 'admin' as const
const id = { type: 'string' } as const

function context(app: XoApp) {
  const ctx = app.apiContext
  if (ctx === undefined) throw new Error('no API call in progress')
  return ctx
}

export function builtinMethods(app: XoApp): ApiMethods {
  return {
    session: {
      signIn: method<{ email?: string; username?: string; password: string }>(
        {
          description: 'sign in with an email (or username) and a password',
          permission: null,
          params: { email: { type: 'string', optional: true }, username: { type: 'string', optional: true }, password: { type: 'string' } },
        },
        function ({ email, username, password }) {
          const login = email ?? username
          if (login === undefined) throw invalidCredentials()
          const user = this.users.authenticate(login, password)
          context(this).connection.set('user_id', user.id)
          return user
        }
      ),
      signOut: method({ description: 'sign out', permission: null }, function () {
        context(this).connection.unset('user_id')
      }),
      getUser: method({ description: 'the signed-in user, or null', permission: null }, function () {
        return context(this).user ?? null
      }),
    },

    remote: {
      getAll: method({ description: 'all remotes (credentials obfuscated)', permission: admin }, function () {
        return this.getAllRemotes()
      }),
      get: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.getRemote(id)
      }),
      create: method<{ name: string; url: string; options?: string }>(
        { description: 'create a remote; returns its id', permission: admin, params: { name: { type: 'string' }, url: { type: 'string' }, options: { type: 'string', optional: true } } },
        async function (props) {
          return (await this.createRemote(props)).id
        }
      ),
      set: method<{ id: string; name?: string; url?: string; enabled?: boolean; options?: string }>(
        {
          description: 'edit a remote (its id does not change)',
          permission: admin,
          params: {
            id,
            name: { type: 'string', optional: true },
            url: { type: 'string', optional: true },
            enabled: { type: 'boolean', optional: true },
            options: { type: ['string', 'null'], optional: true },
          },
        },
        async function ({ id, ...patch }) {
          await this.updateRemote(id, patch)
        }
      ),
      delete: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.removeRemote(id)
      }),
      test: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.testRemote(id)
      }),
    },

    server: {
      getAll: method({ description: 'registered pools and their connection status', permission: admin }, function () {
        return this.getAllXenServers()
      }),
      add: method<{ host: string; username: string; password: string; label?: string; allowUnauthorized?: boolean; readOnly?: boolean; autoConnect?: boolean }>(
        {
          description: 'register a pool master; returns the server id at once and connects in the background (see server.getAll)',
          permission: admin,
          params: {
            host: { type: 'string' },
            username: { type: 'string' },
            password: { type: 'string' },
            label: { type: 'string', optional: true },
            allowUnauthorized: { type: 'boolean', optional: true },
            readOnly: { type: 'boolean', optional: true },
            autoConnect: { type: 'boolean', optional: true },
          },
        },
        function ({ autoConnect = true, ...spec }) {
          return this.addXenServer(spec, { connect: autoConnect })
        }
      ),
      remove: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.unregisterXenServer(id)
      }),
      connect: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.connectXenServer(id)
      }),
      disconnect: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.disconnectXenServer(id)
      }),
    },

    plugin: {
      get: method({ description: 'registered plugins (secrets obfuscated)', permission: admin }, function () {
        return this.getPlugins()
      }),
      configure: method<{ id: string; configuration: Record<string, unknown> }>(
        { description: 'validate and apply a configuration', permission: admin, params: { id, configuration: {} } },
        function ({ id, configuration }) {
          return this.configurePlugin(id, configuration)
        }
      ),
      load: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.loadPlugin(id)
      }),
      unload: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.unloadPlugin(id)
      }),
      enableAutoload: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.enablePluginAutoload(id)
      }),
      disableAutoload: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.disablePluginAutoload(id)
      }),
      purgeConfiguration: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.purgePluginConfiguration(id)
      }),
      test: method<{ id: string; data?: unknown }>({ permission: admin, params: { id, data: { optional: true } } }, async function ({ id, data }) {
        await this.testPlugin(id, data)
      }),
    },

    job: {
      getAll: method<{ type?: string }>({ permission: admin, params: { type: { type: 'string', optional: true } } }, function ({ type }) {
        return this.getAllJobs(type)
      }),
      get: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.getJob(id)
      }),
      // xo-server's job.create: the job gets the caller as its user unless it names one; returns its id
      create: method<{ job: Record<string, unknown> & { type: string } }>(
        {
          description: 'create a job; returns its id',
          permission: admin,
          params: {
            job: {
              type: 'object',
              properties: {
                userId: { type: 'string', optional: true },
                name: { type: 'string', optional: true },
                timeout: { type: 'number', optional: true },
                type: { type: 'string' },
                key: { type: 'string', optional: true },
                method: { type: 'string', optional: true },
                paramsVector: { type: 'object', optional: true },
              },
            },
          },
        },
        async function ({ job }) {
          const userId = typeof job.userId === 'string' && job.userId !== '' ? job.userId : context(this).user?.id
          return (await this.createJob({ ...job, ...(userId === undefined ? {} : { userId }) })).id
        }
      ),
      runSequence: method<{ idSequence: string[] }>(
        { description: 'run jobs one after the other', permission: admin, params: { idSequence: { type: 'array', items: { type: 'string' } } } },
        async function ({ idSequence }) {
          await this.runJobSequence(idSequence)
        }
      ),
    },

    schedule: {
      getAll: method({ permission: admin }, function () {
        return this.getAllSchedules()
      }),
      get: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.getSchedule(id)
      }),
      create: method<{ cron: string; jobId: string; enabled?: boolean; name?: string; timezone?: string }>(
        {
          description: 'create a schedule; returns it',
          permission: admin,
          params: {
            cron: { type: 'string' },
            jobId: { type: 'string' },
            enabled: { type: 'boolean', optional: true },
            name: { type: 'string', optional: true },
            timezone: { type: 'string', optional: true },
          },
        },
        function (props) {
          return this.createSchedule({ ...props, userId: context(this).user?.id })
        }
      ),
      set: method<{ id: string; cron?: string; enabled?: boolean; name?: string | null; timezone?: string | null }>(
        {
          permission: admin,
          params: {
            id,
            cron: { type: 'string', optional: true },
            enabled: { type: 'boolean', optional: true },
            name: { type: ['string', 'null'], optional: true },
            timezone: { type: ['string', 'null'], optional: true },
          },
        },
        function (props) {
          return this.updateSchedule(props)
        }
      ),
      delete: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        return this.deleteSchedule(id)
      }),
    },

    backupNg: {
      listVmBackups: method<{ remotes: string[] }>(
        {
          description: 'the VM backups on these remotes, by remote id then VM uuid (cached a minute per remote)',
          permission: admin,
          params: { remotes: { type: 'array', items: { type: 'string' } } },
        },
        function ({ remotes }) {
          return this.listVmBackupsNg(remotes)
        }
      ),
      getAllLogs: method(
        { description: 'the backup logs keyed by run id, by xo-server\'s rule (Backup → Logs)', permission: admin },
        function () {
          return this.getBackupNgLogs()
        }
      ),
      getLogs: method<{ jobId?: string; limit?: number }>(
        {
          description: 'every job run keyed by run id, with their linked task logs (host double only; XO shows getAllLogs)',
          permission: admin,
          params: { jobId: { type: 'string', optional: true }, limit: { type: 'number', optional: true } },
        },
        function ({ jobId, limit = Infinity }) {
          const logs = Object.values(this.getJobRunLogs())
            .filter(log => jobId === undefined || log.jobId === jobId)
            .slice(-limit)
          return Object.fromEntries(logs.map(log => [log.id, log]))
        }
      ),
    },

    task: {
      getAll: method({ description: 'root task logs, oldest first (REST /rest/v0/tasks in xo-server)', permission: admin }, function () {
        return this.tasks.list()
      }),
      get: method<{ id: string }>({ description: 'one task log, with its subtasks', permission: admin, params: { id } }, function ({ id }) {
        return this.tasks.get(id)
      }),
      abort: method<{ id: string }>({ permission: admin, params: { id } }, function ({ id }) {
        this.tasks.abort(id)
      }),
    },

    system: {
      getMethodsInfo: method({ description: 'the API methods and their parameters', permission: null }, function () {
        return this.apiMethodsInfo
      }),
    },
  }
}
