/**
 * Validation of input against the plugin's JSON Schemas, with errors a user can act on: each
 * names the property at fault and says what is wrong with it. API input names it as a caller
 * writes it (`retention`, `schedule.cron`); the settings form names it in the form's words,
 * from the schema's titles and the job's name (`job 2 "Nightly", Schedule › Cron pattern`).
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
  reportRecipients: 'must be an address such as `admin@example.org`',
}

type Schema = { readonly [keyword: string]: unknown }

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Names a place in a value in the words of the form: each property by its schema `title`, each
 * array item by its `name` (`job 2 "Nightly"`), nested fields joined with ›.
 */
export function formLocation(rootSchema: object, rootValue: unknown, instancePath: string): string {
  const parts: string[] = []
  let schema: unknown = rootSchema
  let value: unknown = rootValue
  let owner = ''
  for (const segment of instancePath.split('/').slice(1)) {
    const current: Schema | undefined = isSchema(schema) ? schema : undefined
    if (/^\d+$/.test(segment) && current !== undefined && isSchema(current['items'])) {
      const items = current['items']
      const index = Number(segment)
      value = Array.isArray(value) ? value[index] : undefined
      const name: unknown = isSchema(value) ? value['name'] : undefined
      const noun = typeof items['title'] === 'string' ? items['title'].toLowerCase() : 'item'
      // a top-level list is named by its item ("job 2"), a nested one keeps its title
      parts.pop()
      if (parts.length > 0) parts.push(owner)
      parts.push(typeof name === 'string' && name !== '' ? `${noun} ${index + 1} "${name}"` : `${noun} ${index + 1}`)
      schema = items
      owner = ''
      continue
    }
    const properties = current !== undefined && isSchema(current['properties']) ? current['properties'] : {}
    const property: unknown = properties[segment]
    const title = isSchema(property) && typeof property['title'] === 'string' ? property['title'] : segment
    owner = title
    parts.push(title)
    schema = property
    value = isSchema(value) ? value[segment] : undefined
  }
  if (parts.length === 0) return ''
  const [first, ...rest] = parts
  return rest.length === 0 ? first! : `${first}, ${rest.join(' › ')}`
}

function titleOf(rootSchema: object, instancePath: string, property: string): string {
  let schema: unknown = rootSchema
  for (const segment of instancePath.split('/').slice(1)) {
    if (!isSchema(schema)) return property
    schema = /^\d+$/.test(segment) ? schema['items'] : isSchema(schema['properties']) ? schema['properties'][segment] : undefined
  }
  const properties = isSchema(schema) && isSchema(schema['properties']) ? schema['properties'] : {}
  const target: unknown = properties[property]
  return isSchema(target) && typeof target['title'] === 'string' ? target['title'] : property
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

interface Wording {
  /** the schema and value the error paths point into, to name places in the form's words */
  readonly form?: { readonly schema: object; readonly value: unknown }
}

function describe(error: ErrorObject, label: string, { form }: Wording): string {
  const path = form === undefined ? propertyPath(error.instancePath) : formLocation(form.schema, form.value, error.instancePath)
  const subject = path === '' ? label : path
  const { params } = error
  const missing = String(params['missingProperty'])
  switch (error.keyword) {
    case 'required':
      return form === undefined
        ? `${subject}: missing property "${missing}"`
        : `${subject}: ${titleOf(form.schema, error.instancePath, missing)} is missing`
    case 'additionalProperties':
      return `${subject}: unknown ${form === undefined ? 'property' : 'field'} "${String(params['additionalProperty'])}"`
    case 'enum':
      return `${subject} must be one of ${((params['allowedValues'] as unknown[] | undefined) ?? []).map(value => `"${String(value)}"`).join(', ')}`
    case 'type':
      return `${subject} must be ${String(params['type']) === 'integer' ? 'a whole number' : `of type ${String(params['type'])}`}`
    case 'minItems':
      return `${subject} must list at least ${String(params['limit'])}`
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
export function compileValidator<T>(schema: object, { words = false }: { readonly words?: boolean } = {}): Validator<T> {
  const validate = ajv.compile<T>(schema)
  return (value, label) => {
    const copy: unknown = structuredClone(value)
    if (validate(copy)) return copy
    const wording: Wording = words ? { form: { schema, value } } : {}
    const problems = [...new Set((validate.errors ?? []).map(error => describe(error, label, wording)))]
    throw new BackupError('INVALID_PARAMETER', `invalid ${label}: ${problems.join('; ')}`, { problems })
  }
}
