/**
 * Turns a standard JSON Schema of an object into XO's `params` style (every property required
 * unless it says `optional: true`), so that API parameters are described once.
 */
import type { XoParamSchema, XoParams } from './xo.js'

type Schema = { readonly [keyword: string]: unknown }

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

// form hints, and the value constraints: the method checks those itself with a message that
// names the parameter and the rule (XO's own check only answers "invalid parameters")
const DROPPED = new Set(['required', 'title', '$type', 'default', 'minimum', 'maximum', 'pattern', 'minLength', 'maxLength', 'minItems', 'uniqueItems'])

function convert(schema: Schema, optional: boolean): XoParamSchema {
  const result: Record<string, unknown> = {}
  for (const [keyword, value] of Object.entries(schema)) {
    if (DROPPED.has(keyword)) continue
    if (keyword === 'properties' && isSchema(value)) result[keyword] = toXoParams(schema)
    else if (keyword === 'items' && isSchema(value)) result[keyword] = convert(value, false)
    else result[keyword] = value
  }
  if (optional) result['optional'] = true
  return result
}

export function toXoParams(schema: Schema): XoParams {
  const properties = isSchema(schema['properties']) ? schema['properties'] : {}
  const required = Array.isArray(schema['required']) ? schema['required'] : []
  const params: Record<string, XoParamSchema> = {}
  for (const [name, property] of Object.entries(properties)) {
    if (isSchema(property)) params[name] = convert(property, !required.includes(name))
  }
  return params
}
