import assert from 'node:assert/strict'
import {
  assertSafeId,
  diskDir,
  formatTimestamp,
  isMetadataTempName,
  isVhdTempName,
  metadataPath,
  metadataTempPath,
  nextFreeTimestamp,
  parseTimestamp,
  relativeToVmDir,
  resolveFromVmDir,
  vhdBlockPath,
  vhdDataPath,
  vhdPath,
  vmDir,
} from '../../src/repository/layout.js'
import { openTempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const VDI = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'

describe('layout', () => {
  it('formats timestamps in UTC to the second', () => {
    assert.equal(formatTimestamp(new Date('2026-11-26T05:50:24.792Z')), '20261126T055024Z')
    assert.equal(formatTimestamp(new Date('2026-01-02T23:04:05+02:00')), '20260102T210405Z')
    assert.equal(parseTimestamp('20261126T055024Z').toISOString(), '2026-11-26T05:50:24.000Z')
  })

  it('builds XO paths', () => {
    assert.equal(vmDir(VM), `xo-vm-backups/${VM}`)
    assert.equal(metadataPath(VM, '20261126T055024Z'), `xo-vm-backups/${VM}/20261126T055024Z.json`)
    assert.equal(diskDir(VM, 'job-1', VDI), `xo-vm-backups/${VM}/vdis/job-1/${VDI}`)
    assert.equal(vhdPath(VM, 'job-1', VDI, '20261126T055024Z', false), `xo-vm-backups/${VM}/vdis/job-1/${VDI}/20261126T055024Z.vhd`)
    const alias = vhdPath(VM, 'job-1', VDI, '20261126T055024Z', true)
    assert.equal(alias, `xo-vm-backups/${VM}/vdis/job-1/${VDI}/20261126T055024Z.alias.vhd`)
    assert.equal(vhdDataPath(alias), `xo-vm-backups/${VM}/vdis/job-1/${VDI}/data/20261126T055024Z.vhd`)
    assert.equal(relativeToVmDir(VM, alias), `vdis/job-1/${VDI}/20261126T055024Z.alias.vhd`)
    assert.equal(resolveFromVmDir(VM, `vdis/job-1/${VDI}/20261126T055024Z.vhd`), `xo-vm-backups/${VM}/vdis/job-1/${VDI}/20261126T055024Z.vhd`)
    assert.equal(vhdBlockPath('d/data/x.vhd', 2345), 'd/data/x.vhd/blocks/2/345')
    const tmp = metadataTempPath(metadataPath(VM, '20261126T055024Z'), 'c0ffee')
    assert.equal(tmp, `xo-vm-backups/${VM}/.20261126T055024Z.json.c0ffee.tmp`)
    assert.ok(isMetadataTempName(tmp.split('/').pop()!))
    assert.ok(!isMetadataTempName('20261126T055024Z.json'))
    assert.ok(isVhdTempName('.1764136200000.20261126T055024Z.vhd'))
    assert.ok(!isVhdTempName('.20261126T055024Z.vhd.merge.json'))
  })

  it('refuses ids that could leave the remote root or the job folder', () => {
    const unsafe: [string, string][] = [
      ['vm', ''],
      ['vm', '..'],
      ['vm', '../etc'],
      ['vm', `${VM}/..`],
      ['vm', 'not-a-uuid'],
      ['vdi', `${VDI}\0`],
      ['job', '..'],
      ['job', '.'],
      ['job', 'a/b'],
      ['job', 'a\\b'],
      ['job', 'x\0y'],
      ['job', '.hidden'],
      ['job', 'a..b'],
      ['schedule', ''],
    ]
    for (const [kind, value] of unsafe) {
      assert.throws(() => assertSafeId(kind, value), { code: 'UNSAFE_PATH' }, `${kind} ${JSON.stringify(value)}`)
    }
    assert.equal(assertSafeId('vm', VM), VM)
    assert.equal(assertSafeId('job', 'job-1'), 'job-1')
    assert.equal(assertSafeId('job', '4fbd5b64-44bd-4ea5-a6d0-2b8f5e1fcf7d'), '4fbd5b64-44bd-4ea5-a6d0-2b8f5e1fcf7d')
    assert.throws(() => vmDir('../../etc'), { code: 'UNSAFE_PATH' })
    assert.throws(() => diskDir(VM, '../other', VDI), { code: 'UNSAFE_PATH' })
    assert.throws(() => metadataPath(VM, '../../x'), { code: 'UNSAFE_PATH' })
    assert.throws(() => resolveFromVmDir(VM, '../../secret.vhd'), { code: 'UNSAFE_PATH' })
    assert.throws(() => relativeToVmDir(VM, `xo-vm-backups/${VDI}/x.vhd`), { code: 'UNSAFE_PATH' })
  })

  it('bumps a timestamp by a second while a restore point or a VHD of that VM uses it', async () => {
    const remote = await openTempRemote()
    try {
      const date = new Date('2026-11-26T05:50:24.500Z')
      assert.equal(await nextFreeTimestamp(remote.handler, VM, date), '20261126T055024Z')
      await remote.handler.outputFile(metadataPath(VM, '20261126T055024Z'), '{}')
      // a VHD left by a run that failed before its metadata
      await remote.handler.outputFile(vhdPath(VM, 'job-2', VDI, '20261126T055025Z', false), '')
      assert.equal(await nextFreeTimestamp(remote.handler, VM, date), '20261126T055026Z')
      assert.equal(await nextFreeTimestamp(remote.handler, '4fbd5b64-44bd-4ea5-a6d0-2b8f5e1fcf7d', date), '20261126T055024Z')
    } finally {
      await remote.close()
    }
  })
})
