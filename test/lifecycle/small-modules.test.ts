import assert from 'node:assert/strict'
import { isNobak } from '../../src/lifecycle/hooks/exclude-nobak.js'
import { removeVhd } from '../../src/lifecycle/remove-vhd.js'
import { chooseRestorePointDate } from '../../src/lifecycle/restore-point-date.js'
import { RESTORED_TAG, START_BLOCKED_REASON, vbdCreateRecord, vmCreateRecord } from '../../src/restore/create-records.js'
import { openRemote } from '../helpers/remotes.js'
import type { TestRemote } from '../helpers/remotes.js'

const VM = '6f1c3a52-8f0e-4d6b-9a57-2c1f4e0b7d11'

describe('[NOBAK] names', () => {
  it('matches the tag at the start, with or without a space after it', () => {
    assert.equal(isNobak('[NOBAK] scratch'), true)
    assert.equal(isNobak('[NOBAK]scratch'), true)
    assert.equal(isNobak('[NOBAK]'), true)
    assert.equal(isNobak('scratch [NOBAK]'), false)
    assert.equal(isNobak(' [NOBAK] scratch'), false)
    assert.equal(isNobak('[NOBAK scratch'), false)
  })
})

describe('restore point dates and partial VHDs on a remote', () => {
  let remote: TestRemote

  before(async () => {
    remote = await openRemote('file')
  })

  after(async () => {
    await remote?.close()
  })

  it('dates a restore point after every name in the VM folder, at second precision', async () => {
    const now = new Date(Date.UTC(2026, 10, 26, 7, 0, 0, 640))
    assert.equal((await chooseRestorePointDate(remote.handler, VM, now)).toISOString(), '2026-11-26T07:00:00.000Z')
    await remote.handler.outputFile(`xo-vm-backups/${VM}/20261126T070000Z.json`, '{}')
    await remote.handler.outputFile(`xo-vm-backups/${VM}/20261126T070004Z.json`, '{}')
    await remote.handler.outputFile(`xo-vm-backups/${VM}/cache.json.gz`, '')
    assert.equal((await chooseRestorePointDate(remote.handler, VM, now)).toISOString(), '2026-11-26T07:00:05.000Z')
    // a VHD a crashed run left, without its metadata, is never overwritten nor sorted after the new one
    await remote.handler.outputFile(`xo-vm-backups/${VM}/vdis/job-1/0a6b0c52-0000-4000-8000-000000000002/20261126T070009Z.vhd`, 'vhd')
    assert.equal((await chooseRestorePointDate(remote.handler, VM, now)).toISOString(), '2026-11-26T07:00:10.000Z')
    const later = new Date(Date.UTC(2026, 10, 26, 8, 0, 0))
    assert.equal((await chooseRestorePointDate(remote.handler, VM, later)).toISOString(), later.toISOString())
  })

  it('removes a VHD file, or a VHD directory with its alias; a missing one is no error', async () => {
    const dir = `xo-vm-backups/${VM}/vdis/job-1/0a6b0c52-0000-4000-8000-000000000001`
    await remote.handler.outputFile(`${dir}/20261126T070000Z.vhd`, 'vhd')
    await remote.handler.outputFile(`${dir}/data/20261126T070001Z.vhd/blocks/0/1`, 'block')
    await remote.handler.outputFile(`${dir}/data/20261126T070001Z.vhd/footer`, 'footer')
    await remote.handler.outputFile(`${dir}/20261126T070001Z.alias.vhd`, 'data/20261126T070001Z.vhd')
    await removeVhd(remote.handler, `${dir}/20261126T070000Z.vhd`)
    await removeVhd(remote.handler, `${dir}/20261126T070001Z.alias.vhd`)
    await removeVhd(remote.handler, `${dir}/20261126T070002Z.alias.vhd`)
    assert.deepEqual(await remote.handler.list(dir), ['data'])
    assert.deepEqual(await remote.handler.list(`${dir}/data`), [])
  })
})

describe('records of a restored VM', () => {
  it('names the VM after the restore point, tags it, blocks its start, drops the backup keys', () => {
    const record = vmCreateRecord(
      {
        name_label: 'erp',
        VCPUs_max: '4',
        VCPUs_at_startup: 2,
        memory_static_max: 2147483648,
        other_config: { 'xo:backup:job': 'job-1', base_template_name: 'Debian' },
        tags: ['prod'],
        blocked_operations: { destroy: 'keep me' },
        platform: { nested: 42 },
      },
      '20261126T070000Z'
    )
    assert.equal(record.name_label, 'erp (20261126T070000Z)')
    assert.equal(record.VCPUs_max, 4)
    assert.equal(record.VCPUs_at_startup, 2)
    assert.equal(record.memory_static_max, 2147483648)
    assert.deepEqual(record.other_config, { base_template_name: 'Debian' })
    assert.deepEqual(record.tags, ['prod', RESTORED_TAG])
    assert.deepEqual(record.blocked_operations, { destroy: 'keep me', start: START_BLOCKED_REASON })
    // a map with a non-string value is not what XAPI takes: the neutral value instead
    assert.deepEqual(record.platform, {})
  })

  it('keeps the device number and bootable flag of a disk', () => {
    const vbd = vbdCreateRecord({ userdevice: '3', bootable: true, mode: 'RW' }, 'OpaqueRef:vm', 'OpaqueRef:vdi')
    assert.equal(vbd.userdevice, '3')
    assert.equal(vbd.bootable, true)
    assert.equal(vbd.type, 'Disk')
  })
})
