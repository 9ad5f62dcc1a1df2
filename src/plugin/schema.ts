/**
 * The JSON Schemas of the plugin, as `as const` values so that TypeScript derives the types
 * from them (`FromSchema`). `schema/*.json` holds the same schemas as files (a test keeps both
 * equal): xo-server renders its configuration form from `configurationSchema` and validates a
 * saved configuration with Ajv (`useDefaults`), and the plugin validates API input with them too.
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
      description: '<minute> <hour> <day of month> <month 0-11> <day of week>, e.g. `0 * * * *` every hour',
      minLength: 1,
      maxLength: 100,
    },
    timezone: {
      type: 'string',
      title: 'Timezone',
      description: 'IANA timezone the pattern is read in, e.g. `Europe/Paris`',
      minLength: 1,
      maxLength: 64,
      default: 'UTC',
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
      description: 'Filled in by the plugin. Do not change it: restore points are filed under it.',
      readOnly: true,
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
      description: 'Whether the schedule fires. A disabled job can still be run on demand.',
      default: true,
    },
  },
  required: ['name', 'vms', 'remote'],
  additionalProperties: false,
} as const

export const configurationSchema = {
  type: 'object',
  properties: {
    defaultRetention: {
      type: 'integer',
      title: 'Default retention',
      description: 'Restore points kept per VM by a job that does not set its own.',
      minimum: 1,
      maximum: MAX_RETENTION,
      default: 7,
    },
    concurrency: {
      type: 'integer',
      title: 'VMs at once',
      description: 'How many VMs of a job are backed up at the same time.',
      minimum: 1,
      maximum: 32,
      default: 2,
    },
    mergeBlockConcurrency: {
      type: 'integer',
      title: 'Merge block concurrency',
      description: 'How many blocks a merge of old deltas into the full reads and writes at once.',
      minimum: 1,
      maximum: 64,
      default: 2,
    },
    useVhdDirectory: {
      type: 'boolean',
      title: 'VHD directories',
      description: 'On remotes that allow both, store disks as VHD directories (one file per block) instead of VHD files.',
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
  },
  required: ['remote', 'restorePoint', 'sr'],
  additionalProperties: false,
} as const

export const verifyParamsSchema = listRestorePointsParamsSchema

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
} as const

// ---------------------------------------------------------------------------------------------
// Types derived from the schemas. `Configuration` is what xo-server hands to `configure` once
// Ajv has filled the defaults in.

type WithDefaults = { keepDefaultedPropertiesOptional: false }
/** what a caller may send: a property with a default may be left out */
type AsInput = { keepDefaultedPropertiesOptional: true }

export type Configuration = FromSchema<typeof configurationSchema, WithDefaults>
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
