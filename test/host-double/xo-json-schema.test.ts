import assert from 'node:assert/strict'
import { compileParams } from './xo-json-schema.js'

function errorsOf(params: Parameters<typeof compileParams>[0], value: Record<string, unknown>): string[] {
  const validate = compileParams(params)
  return validate(value) ? [] : validate.errors!.map(error => `${error.instancePath || '/'} ${error.keyword}`)
}

describe('host double: XO JSON Schema for API params', function () {
  it('requires every property unless optional, also in nested objects and array items', function () {
    const params = {
      job: { type: 'object', properties: { name: { type: 'string' }, note: { type: 'string', optional: true } } },
      vms: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' } } } },
    }
    assert.deepEqual(errorsOf(params, { job: { name: 'a' }, vms: [{ id: 'x' }] }), [])
    assert.deepEqual(errorsOf(params, { job: {}, vms: [{}] }), ['/job required', '/vms/0 required'])
    assert.deepEqual(errorsOf(params, {}), ['/ required', '/ required'])
  })

  it('rejects unknown properties unless the object lists none or has a * wildcard', function () {
    assert.deepEqual(errorsOf({ a: { type: 'object', properties: { x: { type: 'number' } } } }, { a: { x: 1, y: 2 } }), ['/a additionalProperties'])
    assert.deepEqual(errorsOf({ a: { type: 'object' } }, { a: { anything: true } }), [])
    assert.deepEqual(errorsOf({ a: { type: 'object', properties: { '*': { type: 'number' } } } }, { a: { y: 2 } }), [])
    assert.deepEqual(errorsOf({ a: { type: 'object', properties: { '*': { type: 'number' } } } }, { a: { y: 'no' } }), ['/a/y type'])
  })

  it('wants non-empty strings unless minLength, format or pattern says otherwise', function () {
    assert.deepEqual(errorsOf({ s: { type: 'string' } }, { s: '' }), ['/s minLength'])
    assert.deepEqual(errorsOf({ s: { type: 'string', minLength: 0 } }, { s: '' }), [])
    assert.deepEqual(errorsOf({ s: { type: 'string', pattern: '^a*$' } }, { s: '' }), [])
    assert.deepEqual(errorsOf({ s: { enum: ['a', ''] } }, { s: '' }), [])
  })

  it('fills defaults and leaves the caller schema untouched', function () {
    const params = { n: { type: 'integer', default: 3, optional: true } }
    const value: Record<string, unknown> = {}
    assert.equal(compileParams(params)(value), true)
    assert.deepEqual(value, { n: 3 })
    assert.deepEqual(params, { n: { type: 'integer', default: 3, optional: true } })
  })
})
