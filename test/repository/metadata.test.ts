import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { BackupError } from '../../src/errors.js'
import { metadataCachePath, metadataPath, vmDir } from '../../src/repository/layout.js'
import { buildMetadata, readMetadata, writeMetadata } from '../../src/repository/metadata.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { listRestorePoints } from '../../src/repository/restore-points.js'
import { loadReference, recordsOf, testMetadata } from './records.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

type Json = Record<string, unknown>
const keys = (value: unknown) => Object.keys(value as Json).sort()
const firstRecord = (map: unknown) => Object.values(map as Record<string, Json>)[0]!

/** the builder's input for the run that produced a reference file */
function rebuild(reference: Json) {
  const vm = (reference.vm as Json).uuid as string
  const records = recordsOf(reference)
  const vhds: Record<string, string> = {}
  for (const [ref, path] of Object.entries(reference.vhds as Record<string, string>)) vhds[ref] = `${vmDir(vm)}/${path}`
  return buildMetadata({
    job: { id: reference.jobId as string },
    scheduleId: reference.scheduleId as string,
    timestamp: reference.timestamp as number,
    ...records,
    vhds,
    differencing: reference.isVhdDifferencing as Record<string, boolean>,
    size: reference.size as number,
    excluded: [],
    blockChecksums: {},
  })
}

describe('metadata', () => {
  let remote: TempRemote
  beforeEach(async () => {
    remote = await openTempRemote()
  })
  afterEach(async () => {
    await remote.close()
  })

  for (const kind of ['full', 'delta'] as const) {
    it(`builds the same fields as Xen Orchestra's own ${kind} metadata`, () => {
      const reference = loadReference(kind)
      const built = rebuild(reference) as unknown as Json
      assert.deepEqual(keys(built), [...keys(reference), 'continuousDelta'].sort())
      for (const field of ['vm', 'vmSnapshot']) assert.deepEqual(keys(built[field]), keys(reference[field]), field)
      for (const field of ['vbds', 'vdis', 'vifs']) {
        assert.deepEqual(keys(built[field]), keys(reference[field]), `${field} refs`)
        assert.deepEqual(keys(firstRecord(built[field])), keys(firstRecord(reference[field])), `${field} record`)
      }
      // the values XO derives from links, and the values copied from the run, are XO's
      for (const field of ['version', 'mode', 'jobId', 'scheduleId', 'timestamp', 'vhds', 'isVhdDifferencing', 'size', 'vtpms', 'tags', 'includeNonNbdQcow2Fix', 'vdis', 'vifs', 'vbds', 'vm', 'vmSnapshot']) {
        assert.deepEqual(built[field], reference[field], field)
      }
    })
  }

  it('leaves excluded disks out of vbds, vdis and vhds, and says why in its own field', () => {
    const reference = loadReference('full')
    const records = recordsOf(reference)
    const vm = (reference.vm as Json).uuid as string
    const built = buildMetadata({
      job: { id: 'job-1' },
      scheduleId: 's',
      timestamp: new Date('2026-11-26T05:50:24Z'),
      ...records,
      vdis: [],
      vhds: {},
      differencing: {},
      size: 0,
      excluded: [{ vdi: '7b0dcde6-b89f-4261-9740-1a76739251aa', name: '[NOBAK] scratch', reason: '[NOBAK] in its name' }],
    })
    assert.deepEqual([built.vbds, built.vdis, built.vhds], [{}, {}, {}])
    assert.deepEqual(built.continuousDelta?.excluded, [{ vdi: '7b0dcde6-b89f-4261-9740-1a76739251aa', name: '[NOBAK] scratch', reason: '[NOBAK] in its name' }])
    assert.equal(built.vm.uuid, vm)
  })

  it('writes and reads back, and removes XO\'s stale listing cache', async () => {
    const vm = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
    const metadata = testMetadata(vm, 'job-1', new Date('2026-11-26T05:50:24Z'), [
      { vdi: 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04', vhd: `${vmDir(vm)}/vdis/job-1/f5d48e13-15db-4d9e-a2b3-a53af12b0b04/20261126T055024Z.vhd`, differencing: false, checksum: { checksum: 'ab'.repeat(32) } },
    ])
    await remote.handler.outputFile(metadataCachePath(vm), 'stale')
    const path = metadataPath(vm, '20261126T055024Z')
    await writeMetadata(remote.handler, path, metadata)
    assert.deepEqual(await readMetadata(remote.handler, path), metadata)
    assert.deepEqual(JSON.parse(await readFile(join(remote.root, path), 'utf8')), JSON.parse(JSON.stringify(metadata)))
    assert.deepEqual(await readdir(join(remote.root, vmDir(vm))), ['20261126T055024Z.json'])
    assert.deepEqual(metadata.continuousDelta?.blockChecksums, { 'vdis/job-1/f5d48e13-15db-4d9e-a2b3-a53af12b0b04/20261126T055024Z.vhd': 'ab'.repeat(32) })
  })

  it('leaves no .json when the write is interrupted before its rename', async () => {
    const vm = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
    const failing = new Proxy(remote.handler, {
      get(target, key, receiver) {
        if (key === 'rename') return () => Promise.reject(Object.assign(new Error('connection lost'), { code: 'EIO' }))
        const value = Reflect.get(target, key, receiver) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      },
    }) as RemoteHandler
    const path = metadataPath(vm, '20261126T055024Z')
    await assert.rejects(writeMetadata(failing, path, testMetadata(vm, 'job-1', new Date(), [])), /connection lost/)
    assert.deepEqual(await readdir(join(remote.root, vmDir(vm))), [])
  })

  it('names the file and the field of invalid metadata', async () => {
    const vm = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
    const path = metadataPath(vm, '20261126T055024Z')
    await assert.rejects(readMetadata(remote.handler, path), { code: 'RESTORE_POINT_NOT_FOUND' })
    const good = JSON.parse(JSON.stringify(loadReference('delta'))) as Json
    const cases: [Json | string, string][] = [
      ['{ "version": ', 'not valid JSON'],
      [{ ...good, jobId: 42 }, '"jobId"'],
      [{ ...good, vhds: { 'OpaqueRef:nope': 'vdis/x.vhd' } }, '"vhds.OpaqueRef:nope"'],
      [{ ...good, mode: 'full' }, '"mode"'],
      [{ ...good, vm: {} }, '"vm.uuid"'],
    ]
    for (const [content, field] of cases) {
      await remote.handler.outputFile(path, typeof content === 'string' ? content : JSON.stringify(content), { flags: 'w' })
      await assert.rejects(readMetadata(remote.handler, path), (error: BackupError) => {
        assert.equal(error.code, 'METADATA_INVALID')
        assert.ok(error.message.includes(path), error.message)
        assert.ok(error.message.includes(field), `${error.message} should name ${field}`)
        return true
      })
    }
  })

  it('lists restore points Xen Orchestra wrote', async () => {
    for (const kind of ['full', 'delta'] as const) {
      const reference = loadReference(kind)
      const vm = (reference.vm as Json).uuid as string
      const vhd = Object.values(reference.vhds as Record<string, string>)[0]!
      const ts = vhd.split('/').pop()!.replace('.vhd', '')
      await remote.handler.outputFile(metadataPath(vm, ts), JSON.stringify(reference))
    }
    const points = await listRestorePoints(remote.handler)
    assert.deepEqual(
      points.map(p => [p.vmName, p.jobId, p.disks.map(d => [d.vdi, d.name, d.vhd, d.differencing])]),
      [
        ['vm1', 'job-1', [['f5d48e13-15db-4d9e-a2b3-a53af12b0b04', 'vm1 disk', 'xo-vm-backups/997e38ca-c27e-4baa-8e5f-19d95c27c74b/vdis/job-1/f5d48e13-15db-4d9e-a2b3-a53af12b0b04/20261126T055023Z.vhd', false]]],
        ['vm1', 'job-1', [['f5d48e13-15db-4d9e-a2b3-a53af12b0b04', 'vm1 disk', 'xo-vm-backups/997e38ca-c27e-4baa-8e5f-19d95c27c74b/vdis/job-1/f5d48e13-15db-4d9e-a2b3-a53af12b0b04/20261126T055024Z.vhd', true]]],
      ],
    )
    assert.ok(points[0]!.timestamp < points[1]!.timestamp)
  })
})
