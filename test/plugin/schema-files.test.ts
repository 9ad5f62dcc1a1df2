import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

import { apiParamsSchemas, configurationSchema, jobSchema, settingsSchema } from '../../src/plugin/schema.js'

// build/test/plugin → repository root
const root = fileURLToPath(new URL('../../../', import.meta.url))

async function readJson(path: string): Promise<unknown> {
  return JSON.parse(await readFile(`${root}schema/${path}`, 'utf8'))
}

describe('schema files', () => {
  it('schema/configuration.json (the form), settings.json and job.json are the schemas the plugin uses', async () => {
    assert.deepEqual(await readJson('configuration.json'), configurationSchema)
    assert.deepEqual(await readJson('settings.json'), settingsSchema)
    assert.deepEqual(await readJson('job.json'), jobSchema)
  })

  it('schema/api/ holds one file per API method, equal to the schema the method validates with', async () => {
    const files = (await readdir(`${root}schema/api`)).filter(name => name.endsWith('.json')).sort()
    assert.deepEqual(files, Object.keys(apiParamsSchemas).map(name => `${name}.json`).sort())
    for (const [name, schema] of Object.entries(apiParamsSchemas)) {
      assert.deepEqual(await readJson(`api/${name}.json`), schema, name)
    }
  })

  it('offers XO form pickers for VMs and the remote', () => {
    const { items } = settingsSchema.properties.jobs
    assert.equal(items.properties.vms.items.$type, 'vm')
    assert.equal(items.properties.remote.$type, 'remote')
  })
})
