/**
 * The command line, read with `node:util` `parseArgs`: a command, then its options. Anything
 * unknown, missing or repeated is a `UsageError` (exit code 2).
 */
import { parseArgs } from 'node:util'

import type { DeleteOptions } from './commands/delete.js'
import type { ListOptions } from './commands/list.js'
import type { RestoreOptions } from './commands/restore.js'
import type { VerifyOptions } from './commands/verify.js'
import { UsageError } from './usage.js'

export type Command =
  | { readonly name: 'help' }
  | { readonly name: 'list'; readonly options: ListOptions }
  | { readonly name: 'verify'; readonly options: VerifyOptions }
  | { readonly name: 'restore'; readonly options: RestoreOptions }
  | { readonly name: 'delete'; readonly options: DeleteOptions }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const remoteOptions = {
  remote: { type: 'string' },
  vm: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const

const verifyOptions = {
  ...remoteOptions,
  sample: { type: 'string' },
  seed: { type: 'string' },
} as const

const restoreOptions = {
  ...remoteOptions,
  'allow-damaged': { type: 'boolean', default: false },
  'new-mac-addresses': { type: 'boolean', default: false },
  'restore-point': { type: 'string' },
  pool: { type: 'string' },
  user: { type: 'string', default: 'root' },
  'password-file': { type: 'string' },
  sr: { type: 'string' },
} as const

const deleteOptions = {
  remote: { type: 'string' },
  'restore-point': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const

function required(value: string | undefined, option: string): string {
  if (value === undefined || value === '') throw new UsageError(`--${option} is required`)
  return value
}

function uuid(value: string | undefined, option: string): string | undefined {
  if (value !== undefined && !UUID.test(value)) throw new UsageError(`--${option} must be a uuid, not "${value}"`)
  return value
}

function url(value: string, option: string): string {
  try {
    new URL(value)
  } catch {
    throw new UsageError(`--${option} must be a URL (e.g. file:///backups or https://pool-master), not "${value.replace(/\/\/[^@/]*@/, '//***@')}"`)
  }
  return value
}

/** `--sample 5%` (or `5`): a share of blocks in (0, 100] */
function percent(value: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(value)
  const share = match === null ? NaN : Number(match[1])
  if (!(share > 0 && share <= 100)) throw new UsageError(`--sample must be a share of blocks in (0, 100] %, e.g. 5%, not "${value}"`)
  return share
}

function integer(value: string, option: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > 2 ** 31 - 1) throw new UsageError(`--${option} must be an integer from 0 to ${2 ** 31 - 1}, not "${value}"`)
  return Number(value)
}

/** `parseArgs`' own errors (unknown option, missing value...) are usage errors */
function asUsage<T>(parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error))
  }
}

export function parseCommandLine(argv: readonly string[]): Command {
  const [name, ...args] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') return { name: 'help' }
  switch (name) {
    case 'list': {
      const { values } = asUsage(() => parseArgs({ args, options: remoteOptions, strict: true, allowPositionals: false }))
      if (values.help === true) return { name: 'help' }
      const vm = uuid(values.vm, 'vm')
      return { name, options: { remote: url(required(values.remote, 'remote'), 'remote'), json: values.json === true, ...(vm === undefined ? {} : { vm }) } }
    }
    case 'verify': {
      const { values } = asUsage(() => parseArgs({ args, options: verifyOptions, strict: true, allowPositionals: false }))
      if (values.help === true) return { name: 'help' }
      const vm = uuid(values.vm, 'vm')
      if (values.seed !== undefined && values.sample === undefined) throw new UsageError('--seed goes with --sample')
      const sample = values.sample === undefined ? undefined : { percent: percent(values.sample), ...(values.seed === undefined ? {} : { seed: integer(values.seed, 'seed') }) }
      return {
        name,
        options: {
          remote: url(required(values.remote, 'remote'), 'remote'),
          json: values.json === true,
          ...(vm === undefined ? {} : { vm }),
          ...(sample === undefined ? {} : { sample }),
        },
      }
    }
    case 'restore': {
      const { values } = asUsage(() => parseArgs({ args, options: restoreOptions, strict: true, allowPositionals: false }))
      if (values.help === true) return { name: 'help' }
      const vm = uuid(values.vm, 'vm')
      const sr = uuid(values.sr, 'sr')
      const passwordFile = values['password-file']
      return {
        name,
        options: {
          remote: url(required(values.remote, 'remote'), 'remote'),
          restorePoint: required(values['restore-point'], 'restore-point'),
          pool: url(required(values.pool, 'pool'), 'pool'),
          user: required(values.user, 'user'),
          json: values.json === true,
          allowDamaged: values['allow-damaged'] === true,
          newMacAddresses: values['new-mac-addresses'] === true,
          ...(vm === undefined ? {} : { vm }),
          ...(sr === undefined ? {} : { sr }),
          ...(passwordFile === undefined ? {} : { passwordFile }),
        },
      }
    }
    case 'delete': {
      const { values } = asUsage(() => parseArgs({ args, options: deleteOptions, strict: true, allowPositionals: false }))
      if (values.help === true) return { name: 'help' }
      return {
        name,
        options: {
          remote: url(required(values.remote, 'remote'), 'remote'),
          restorePoint: required(values['restore-point'], 'restore-point'),
          json: values.json === true,
        },
      }
    }
    default:
      throw new UsageError(`unknown command "${name}"`)
  }
}
