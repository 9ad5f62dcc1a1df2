/**
 * The JSON Schemas of the plugin, as `as const` values so that TypeScript derives the types
 * from them (`FromSchema`). `schema/*.json` holds the same schemas as files (a test keeps both
 * equal).
 *
 * Two schemas describe the settings. `settingsSchema` is the strict one: the plugin validates
 * every configuration and API input with it, and its errors name the job and the field in words.
 * `configurationSchema` is what xo-server gets: the same form (titles, descriptions, pickers,
 * required fields) without the value rules, because xo-server validates with it BEFORE the plugin
 * sees the configuration and its web UI shows such errors raw (JSON path and regex).
 *
 * What XO's web UI does with a schema (seen in XO 5): descriptions are rendered as Markdown/HTML
 * (so placeholders are written in backticks), `readOnly` is ignored, and defaults inside array
 * items are not shown: a job's field with a default would show one value and save another, so no
 * job field has a default (absent means what an empty field shows: off, none).
 */
import type { FromSchema } from 'json-schema-to-ts'

/** restore points kept per VM: at least one, and a chain longer than this is not a backup plan */
export const MAX_RETENTION = 1000
/** a job name: letters, digits, spaces and a few separators, no path or markup characters */
export const NAME_PATTERN = "^[\\p{L}\\p{N}][\\p{L}\\p{N} _.,:'()+#@-]*$"
export const ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]*$'

export const scheduleSchema = {
  type: 'object',
  title: 'Schedule',
  description: 'When XO runs the job on its own. Leave it out to run the job only on demand.',
  properties: {
    cron: {
      type: 'string',
      title: 'Cron pattern',
      description: 'Five fields: `minute hour day-of-month month(0-11) day-of-week`, e.g. `0 2 * * *` every day at 02:00, `0 * * * *` every hour',
      minLength: 1,
      maxLength: 100,
    },
    timezone: {
      type: 'string',
      title: 'Timezone',
      description: 'IANA timezone the pattern is read in, e.g. `Europe/Paris`; `UTC` when left empty',
      minLength: 1,
      maxLength: 64,
    },
  },
  required: ['cron'],
  additionalProperties: false,
} as const

export const jobSchema = {
  type: 'object',
  title: 'Job',
  properties: {
    id: {
      type: 'string',
      title: 'Identifier',
      description:
        'Filled in by the plugin when the job is first saved: leave it empty for a new job. It cannot be changed afterwards (the job\'s restore points and reference snapshots are filed under it): a change is refused.',
      pattern: ID_PATTERN,
      maxLength: 64,
    },
    name: {
      type: 'string',
      title: 'Name',
      pattern: NAME_PATTERN,
      minLength: 1,
      maxLength: 100,
    },
    vms: {
      type: 'array',
      title: 'VMs',
      items: { type: 'string', $type: 'vm' },
      minItems: 1,
      uniqueItems: true,
    },
    remote: {
      type: 'string',
      title: 'Remote',
      $type: 'remote',
    },
    retention: {
      type: 'integer',
      title: 'Retention',
      description: 'Restore points kept per VM; the default retention when left out.',
      minimum: 1,
      maximum: MAX_RETENTION,
    },
    schedule: scheduleSchema,
    enabled: {
      type: 'boolean',
      title: 'Enabled',
      description: 'Whether the schedule fires; off unless turned on. A job that is off can still be run on demand (plugin test form, or `continuousDelta.runJob`).',
    },
    reportWhen: {
      type: 'string',
      title: 'Report',
      description: 'When to send a report of a run through the transports XO has loaded (e-mail, XMPP, Slack, Icinga2): `never` when left empty.',
      enum: ['never', 'failure', 'always'],
    },
    transport: {
      type: 'string',
      title: 'Disk transport',
      description:
        'How disks are read from the pool. `auto` (when left empty): over NBD, reading only the blocks changed block tracking lists, where the pool offers both (XenServer 7.3 / XCP-ng 7.4 and later, with a network of purpose `nbd` or `insecure_nbd`); the reference snapshot then keeps only its tracking metadata on the SR between runs. Elsewhere the HTTP export, and the run log says why. `nbd`: the same, with a warning when it falls back. `export`: always the HTTP export (the reference snapshot keeps its data). A full is always read with the HTTP export.',
      enum: ['auto', 'nbd', 'export'],
    },
    nbdConnections: {
      type: 'integer',
      title: 'NBD connections per disk',
      description: 'How many NBD connections read one disk at the same time; 2 when left empty.',
      minimum: 1,
      maximum: 16,
    },
    reportRecipients: {
      type: 'array',
      title: 'Report recipients',
      description: 'E-mail (or XMPP) addresses the report is sent to; Slack and Icinga2 send to their own configured channel.',
      items: { type: 'string', pattern: '^[^\\s@]+@[^\\s@]+$', maxLength: 254 },
      uniqueItems: true,
    },
    healthCheckEvery: {
      type: 'integer',
      title: 'Health check every N runs',
      description:
        'Every this many runs, the restore point each VM just got is health-checked: restored to the health check SR without network, started, its guest tools awaited, then destroyed. A failed check fails the VM in the run. Off when left empty.',
      minimum: 1,
      maximum: 1000,
    },
    healthCheckSr: {
      type: 'string',
      title: 'Health check SR',
      description: 'Where the copies of a health check are restored (and destroyed again); needed with `Health check every N runs`.',
      $type: 'sr',
    },
    healthCheckTimeout: {
      type: 'integer',
      title: 'Health check timeout (seconds)',
      description: "From the copy's start to its guest tools reporting; 600 (10 minutes) when left empty.",
      minimum: 1,
      maximum: 86400,
    },
  },
  required: ['name', 'vms', 'remote'],
  additionalProperties: false,
} as const

export const settingsSchema = {
  type: 'object',
  properties: {
    defaultRetention: {
      type: 'integer',
      title: 'Default retention (restore points)',
      description: 'Restore points kept per VM by a job that does not set its own.',
      minimum: 1,
      maximum: MAX_RETENTION,
      default: 7,
    },
    concurrency: {
      type: 'integer',
      title: 'VMs at once (per job)',
      description: 'How many VMs of a job are backed up at the same time.',
      minimum: 1,
      maximum: 32,
      default: 2,
    },
    transferTimeoutSeconds: {
      type: 'integer',
      title: 'Transfer inactivity timeout (seconds)',
      description: 'A disk transfer that receives no data for this many seconds fails (its VM is retried on the next run); 600 (10 minutes) when left empty.',
      minimum: 5,
      maximum: 86400,
      default: 600,
    },
    useVhdDirectory: {
      type: 'boolean',
      title: 'VHD directories',
      description: 'On remotes that allow both, store disks as VHD directories (one file per block) instead of VHD files. A change applies to each disk from its next full backup on (a new disk, a new chain after damage, or once its backups are deleted): a delta always extends its chain in the format of that chain, and existing backups keep theirs.',
      default: false,
    },
    jobs: {
      type: 'array',
      title: 'Jobs',
      items: jobSchema,
      default: [],
    },
  },
  additionalProperties: false,
} as const

/** settings an earlier version offered and that are accepted, then ignored (never in the form) */
export const RETIRED_SETTINGS = ['mergeBlockConcurrency'] as const

/** the value rules xo-server must not check first (the plugin checks them, with worded errors) */
const VALUE_RULES = new Set(['pattern', 'minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'uniqueItems', 'additionalProperties'])

function withoutValueRules(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutValueRules)
  if (typeof schema !== 'object' || schema === null) return schema
  const result: Record<string, unknown> = {}
  for (const [keyword, value] of Object.entries(schema)) {
    if (VALUE_RULES.has(keyword)) continue
    if (keyword === 'properties' && typeof value === 'object' && value !== null) {
      result[keyword] = Object.fromEntries(Object.entries(value).map(([name, property]) => [name, withoutValueRules(property)]))
    } else result[keyword] = keyword === 'enum' || keyword === 'required' ? value : withoutValueRules(value)
  }
  return result
}

/**
 * The schema xo-server renders its form from and validates with: `settingsSchema`'s fields,
 * titles, descriptions, pickers, required fields and top-level defaults, without the value rules.
 */
export const configurationSchema = withoutValueRules(settingsSchema) as Readonly<Record<string, unknown>>

/**
 * The plugin's test form (Settings → Plugins, below the settings: "Test data" and the "Test
 * plugin" button), the one place XO's web UI lets a plugin offer an action: it runs a job now.
 */
export const runNowSchema = {
  type: 'object',
  title: 'Run a job now',
  description: 'Type the name of a job (as in the Jobs list above), then press **Test plugin**: the job runs now, even when it is off (or, with *Health check instead*, its restore points are health-checked). A spinner turns until the run ends: a tick means every VM was backed up; otherwise an alert names each VM that failed and why. The run is in Backup → Logs and sends its report like any other.',
  properties: {
    job: { type: 'string', title: 'Job name', description: 'The name of a configured job (its Identifier works too).' },
    healthCheck: {
      type: 'boolean',
      title: 'Health check instead',
      description: "Turned on: the job does not run; the newest restore point of each of its VMs is health-checked on the job's *Health check SR* (restored without network, started, its guest tools awaited, destroyed). A tick means every check passed; otherwise the alert names each VM and why.",
    },
  },
  required: ['job'],
} as const

// ---------------------------------------------------------------------------------------------
// API parameters, in standard JSON Schema; `xoParams()` turns them into XO's `params` style.

const jobIdProperty = { type: 'string', minLength: 1, maxLength: 64 } as const

export const createJobParamsSchema = {
  type: 'object',
  properties: {
    name: jobSchema.properties.name,
    vms: jobSchema.properties.vms,
    remote: jobSchema.properties.remote,
    retention: jobSchema.properties.retention,
    schedule: scheduleSchema,
    enabled: { type: 'boolean' },
    reportWhen: jobSchema.properties.reportWhen,
    reportRecipients: jobSchema.properties.reportRecipients,
    transport: jobSchema.properties.transport,
    nbdConnections: jobSchema.properties.nbdConnections,
    healthCheckEvery: jobSchema.properties.healthCheckEvery,
    healthCheckSr: jobSchema.properties.healthCheckSr,
    healthCheckTimeout: jobSchema.properties.healthCheckTimeout,
  },
  required: ['name', 'vms', 'remote'],
  additionalProperties: false,
} as const

export const editJobParamsSchema = {
  type: 'object',
  properties: {
    id: jobIdProperty,
    name: jobSchema.properties.name,
    vms: jobSchema.properties.vms,
    remote: jobSchema.properties.remote,
    retention: jobSchema.properties.retention,
    schedule: scheduleSchema,
    enabled: { type: 'boolean' },
    reportWhen: jobSchema.properties.reportWhen,
    reportRecipients: jobSchema.properties.reportRecipients,
    transport: jobSchema.properties.transport,
    nbdConnections: jobSchema.properties.nbdConnections,
    healthCheckEvery: jobSchema.properties.healthCheckEvery,
    healthCheckSr: jobSchema.properties.healthCheckSr,
    healthCheckTimeout: jobSchema.properties.healthCheckTimeout,
  },
  required: ['id'],
  additionalProperties: false,
} as const

export const jobRefParamsSchema = {
  type: 'object',
  properties: { id: jobIdProperty },
  required: ['id'],
  additionalProperties: false,
} as const

export const noParamsSchema = {
  type: 'object',
  properties: {},
  additionalProperties: false,
} as const

export const listRestorePointsParamsSchema = {
  type: 'object',
  properties: {
    remote: { type: 'string', minLength: 1 },
    vm: { type: 'string', minLength: 1 },
  },
  required: ['remote'],
  additionalProperties: false,
} as const

export const restoreParamsSchema = {
  type: 'object',
  properties: {
    remote: { type: 'string', minLength: 1 },
    restorePoint: { type: 'string', minLength: 1 },
    sr: { type: 'string', minLength: 1 },
    allowDamaged: {
      type: 'boolean',
      description: 'restore even when blocks do not match the checksums recorded when they were written; the task lists them',
    },
    newMacAddresses: {
      type: 'boolean',
      description: "give the restored VM's interfaces new MAC addresses instead of those it had (a copy beside the original)",
    },
  },
  required: ['remote', 'restorePoint', 'sr'],
  additionalProperties: false,
} as const

export const verifyParamsSchema = {
  type: 'object',
  properties: {
    remote: { type: 'string', minLength: 1 },
    vm: { type: 'string', minLength: 1 },
    sample: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 100,
      description: 'check a random share (in %) of the blocks of each VHD instead of all of them',
    },
    seed: { type: 'integer', minimum: 0, maximum: 2147483647, description: 'with sample: the draw to repeat (the report gives the one used)' },
  },
  required: ['remote'],
  additionalProperties: false,
} as const

export const deleteJobParamsSchema = {
  type: 'object',
  properties: {
    id: jobIdProperty,
    deleteBackups: {
      type: 'boolean',
      description: "also delete the job's restore points from its remote (default: they are kept, restorable)",
    },
  },
  required: ['id'],
  additionalProperties: false,
} as const

export const deleteRestorePointParamsSchema = {
  type: 'object',
  properties: {
    remote: { type: 'string', minLength: 1 },
    restorePoint: { type: 'string', minLength: 1, description: 'the id listRestorePoints gives' },
  },
  required: ['remote', 'restorePoint'],
  additionalProperties: false,
} as const

export const forgetVmParamsSchema = {
  type: 'object',
  properties: {
    remote: { type: 'string', minLength: 1 },
    vm: { type: 'string', minLength: 1, description: 'the uuid of the VM whose backups are deleted' },
    confirm: { type: 'string', minLength: 1, description: 'the same VM uuid again: nothing is deleted unless it matches' },
  },
  required: ['remote', 'vm', 'confirm'],
  additionalProperties: false,
} as const

export const healthCheckParamsSchema = {
  type: 'object',
  properties: {
    job: { ...jobIdProperty, description: 'the id of the job whose restore point is checked' },
    vm: { type: 'string', minLength: 1, description: 'the uuid of the backed-up VM' },
    restorePoint: { type: 'string', minLength: 1, description: "the id listRestorePoints gives; default: the VM's newest restore point of this job" },
    sr: { type: 'string', minLength: 1, description: "the uuid of the SR the copy is restored to; default: the job's health check SR" },
    timeout: {
      type: 'integer',
      minimum: 1,
      maximum: 86400,
      description: "seconds from the copy's start to its guest tools reporting; default: the job's, else 600",
    },
  },
  required: ['job', 'vm'],
  additionalProperties: false,
} as const

export const RUN_STATUSES = ['running', 'success', 'partial', 'failure', 'cancelled', 'interrupted'] as const
export const MAX_RUNS_LISTED = 1000

export const getRunsParamsSchema = {
  type: 'object',
  properties: {
    job: { type: 'string', minLength: 1, maxLength: 64, description: 'only the runs of this job (its id)' },
    vm: { type: 'string', minLength: 1, description: 'only the runs that backed up this VM (its uuid)' },
    status: { type: 'string', enum: RUN_STATUSES, description: 'only the runs that ended so' },
    since: { type: 'integer', minimum: 0, description: 'only the runs started at or after this time (ms since the epoch)' },
    limit: { type: 'integer', minimum: 1, maximum: MAX_RUNS_LISTED, description: 'at most this many runs, newest first (default 50)' },
  },
  additionalProperties: false,
} as const

/** every API method's parameters, by method name (the file names under `schema/api/`) */
export const apiParamsSchemas = {
  createJob: createJobParamsSchema,
  editJob: editJobParamsSchema,
  deleteJob: deleteJobParamsSchema,
  getJobs: noParamsSchema,
  runJob: jobRefParamsSchema,
  listRestorePoints: listRestorePointsParamsSchema,
  restore: restoreParamsSchema,
  verify: verifyParamsSchema,
  getRuns: getRunsParamsSchema,
  deleteRestorePoint: deleteRestorePointParamsSchema,
  forgetVm: forgetVmParamsSchema,
  healthCheck: healthCheckParamsSchema,
} as const

// ---------------------------------------------------------------------------------------------
// Types derived from the schemas. `Configuration` is what xo-server hands to `configure` once
// Ajv has filled the defaults in.

type WithDefaults = { keepDefaultedPropertiesOptional: false }
/** what a caller may send: a property with a default may be left out */
type AsInput = { keepDefaultedPropertiesOptional: true }

export type Configuration = FromSchema<typeof settingsSchema, WithDefaults>
export type ConfiguredJob = FromSchema<typeof jobSchema, WithDefaults>
export type JobSchedule = FromSchema<typeof scheduleSchema, WithDefaults>
export type CreateJobParams = FromSchema<typeof createJobParamsSchema, AsInput>
export type EditJobParams = FromSchema<typeof editJobParamsSchema, AsInput>
export type JobRefParams = FromSchema<typeof jobRefParamsSchema>
export type ListRestorePointsParams = FromSchema<typeof listRestorePointsParamsSchema>
export type RestoreParams = FromSchema<typeof restoreParamsSchema>
export type VerifyParams = FromSchema<typeof verifyParamsSchema>
export type DeleteJobParams = FromSchema<typeof deleteJobParamsSchema>
export type DeleteRestorePointParams = FromSchema<typeof deleteRestorePointParamsSchema>
export type ForgetVmParams = FromSchema<typeof forgetVmParamsSchema>
export type GetRunsParams = FromSchema<typeof getRunsParamsSchema>
export type HealthCheckParams = FromSchema<typeof healthCheckParamsSchema>
