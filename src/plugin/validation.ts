/**
 * Validation of input against the plugin's JSON Schemas, with errors a user can act on: each
 * names the property at fault (`jobs[1].retention`) and says what is wrong with it.
 */
import { Ajv } from 'ajv'
import type { ErrorObject } from 'ajv'

import { BackupError } from '../errors.js'
import { MAX_RETENTION } from './schema.js'

const ajv = new Ajv({ allErrors: true, useDefaults: true })
// UI hints read by XO's form: no meaning for validation
ajv.addVocabulary(['$type'])

const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  name: "may only hold letters, digits, spaces and . , : ' ( ) + # @ _ - (and must start with a letter or digit)",
  id: 'may only hold ASCII letters, digits, _ and - (and must start with a letter or digit)',
}

function propertyPath(instancePath: string): string {
  let path = ''
  for (const segment of instancePath.split('/').slice(1)) {
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`
  }
  return path
}

function lastProperty(instancePath: string): string {
  const segments = instancePath.split('/').filter(segment => !/^\d+$/.test(segment))
  return segments[segments.length - 1] ?? ''
}

function describe(error: ErrorObject, label: string): string {
  const path = propertyPath(error.instancePath)
  const subject = path === '' ? label : path
  const { params } = error
  switch (error.keyword) {
    case 'required':
      return `${path === '' ? label : subject}: missing property "${String(params['missingProperty'])}"`
    case 'additionalProperties':
      return `${subject}: unknown property "${String(params['additionalProperty'])}"`
    case 'pattern':
      return `${subject} ${PATTERN_MESSAGES[lastProperty(error.instancePath)] ?? `must match ${String(params['pattern'])}`}`
    case 'maximum':
      return lastProperty(error.instancePath).toLowerCase().endsWith('retention')
        ? `${subject} must be at most ${MAX_RETENTION} restore points`
        : `${subject} must be at most ${String(params['limit'])}`
    case 'minimum':
      return `${subject} must be at least ${String(params['limit'])}`
    case 'uniqueItems':
      return `${subject} lists the same item twice`
    default:
      return `${subject} ${error.message ?? 'is invalid'}`
  }
}

export type Validator<T> = (value: unknown, label: string) => T

/**
 * A validator for `schema`: it returns a validated copy of the value with the schema's defaults
 * filled in, or throws `INVALID_PARAMETER` listing every problem.
 */
export function compileValidator<T>(schema: object): Validator<T> {
  const validate = ajv.compile<T>(schema)
  return (value, label) => {
    const copy: unknown = structuredClone(value)
    if (validate(copy)) return copy
    const problems = [...new Set((validate.errors ?? []).map(error => describe(error, label)))]
    throw new BackupError('INVALID_PARAMETER', `invalid ${label}: ${problems.join('; ')}`, { problems })
  }
}
