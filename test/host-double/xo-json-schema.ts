/**
 * XO's flavour of JSON Schema for API method parameters, as xo-server 5.207 compiles it:
 * - object properties are required unless marked `optional: true`;
 * - unknown properties are rejected (unless the object lists no properties, or has a `*` wildcard);
 * - strings must be non-empty unless they carry `minLength`, `format` or `pattern`.
 * The result is compiled with Ajv (`allErrors`, `allowUnionTypes`, `useDefaults`).
 */
import { Ajv } from 'ajv'
import type { ErrorObject, ValidateFunction } from 'ajv'

export type XoSchema = { readonly [key: string]: unknown }
/** the `params` of an API method: property name → XO schema */
export type XoParamsSchema = { readonly [param: string]: XoSchema }

type MutableSchema = Record<string, unknown>

const ajv = new Ajv({ allErrors: true, allowUnionTypes: true, useDefaults: true, strict: false })

function hasType(schema: MutableSchema, type: string): boolean {
  const declared = schema['type']
  return declared === type || (Array.isArray(declared) && declared.includes(type))
}

function isSchema(value: unknown): value is MutableSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function toJsonSchema(schema: MutableSchema): MutableSchema {
  if (schema['enum'] !== undefined) return schema

  if (hasType(schema, 'array')) {
    const items = schema['items']
    if (Array.isArray(items)) schema['items'] = items.map(item => (isSchema(item) ? toJsonSchema(item) : item))
    else if (isSchema(items)) schema['items'] = toJsonSchema(items)
  }

  if (hasType(schema, 'object')) {
    const properties = isSchema(schema['properties']) ? schema['properties'] : {}
    schema['properties'] = properties
    for (const [key, value] of Object.entries(properties)) {
      if (isSchema(value)) properties[key] = toJsonSchema(value)
    }
    let keys = Object.keys(properties)
    const additional = schema['additionalProperties']
    if (additional === undefined) {
      const wildcard = properties['*']
      if (wildcard === undefined) {
        schema['additionalProperties'] = keys.length === 0
      } else {
        delete properties['*']
        keys = Object.keys(properties)
        schema['additionalProperties'] = wildcard
      }
    } else if (isSchema(additional)) {
      schema['additionalProperties'] = toJsonSchema(additional)
    }
    if (schema['required'] === undefined) {
      const required = keys.filter(key => {
        const property = properties[key]
        if (!isSchema(property)) return true
        const isOptional = property['optional'] === true
        delete property['optional']
        return !isOptional
      })
      if (required.length !== 0) schema['required'] = required
    }
  }

  if (hasType(schema, 'string')) {
    if (schema['minLength'] === undefined && schema['format'] === undefined && schema['pattern'] === undefined) {
      schema['minLength'] = 1
    }
  }
  return schema
}

export type ParamsValidator = ValidateFunction<Record<string, unknown>>
export type ValidationError = ErrorObject

/** compiles the `params` of an API method into a validator of the whole params object */
export function compileParams(params: XoParamsSchema): ParamsValidator {
  const schema = toJsonSchema({ type: 'object', properties: structuredClone(params) as MutableSchema })
  return ajv.compile<Record<string, unknown>>(schema)
}
