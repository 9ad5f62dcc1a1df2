import assert from 'node:assert/strict'
import { BACKUP_KEYS, backupOtherConfig, formatXapiDate, setOtherConfig } from '../../src/xapi/other-config.js'
import { asVdi } from '../../src/xapi/records.js'
import { blockMigration, MIGRATION_BLOCKED_REASON, snapshotVm } from '../../src/xapi/snapshot.js'
import { FakeXapi, FakeXapiError } from './fake-xapi.js'

const vmFields = (blocked: Record<string, string> = {}) => ({
  name_label: 'web',
  name_description: '',
  power_state: 'Running',
  is_a_snapshot: false,
  is_a_template: false,
  snapshot_of: 'OpaqueRef:NULL',
  snapshots: [],
  snapshot_time: '19700101T00:00:00Z',
  VBDs: [],
  VIFs: [],
  other_config: {},
  blocked_operations: blocked,
  tags: [],
})

describe('XAPI modules', () => {
  it('snapshots with the ignore list where XAPI takes it', async () => {
    const xapi = new FakeXapi().answer('VM.snapshot', () => 'OpaqueRef:snap')
    const taken = await snapshotVm(xapi, 'OpaqueRef:vm', 'backup', ['OpaqueRef:nobak'])
    assert.deepEqual(taken, { ref: 'OpaqueRef:snap', ignoreListSupported: true })
    assert.deepEqual(xapi.calls.map(call => call.args), [['OpaqueRef:vm', 'backup', ['OpaqueRef:nobak']]])
  })

  it('asks again with two arguments when XAPI answers MESSAGE_PARAMETER_COUNT_MISMATCH', async () => {
    const xapi = new FakeXapi().answer('VM.snapshot', (...args: unknown[]) => {
      if (args.length === 3) throw new FakeXapiError('MESSAGE_PARAMETER_COUNT_MISMATCH', ['VM.snapshot', '2', '3'])
      return 'OpaqueRef:snap'
    })
    const taken = await snapshotVm(xapi, 'OpaqueRef:vm', 'backup', ['OpaqueRef:nobak'])
    assert.deepEqual(taken, { ref: 'OpaqueRef:snap', ignoreListSupported: false })
    assert.deepEqual(xapi.calls.map(call => call.args.length), [3, 2])
  })

  it('does not retry other snapshot failures', async () => {
    const xapi = new FakeXapi().answer('VM.snapshot', () => {
      throw new FakeXapiError('SR_BACKEND_FAILURE_44')
    })
    await assert.rejects(snapshotVm(xapi, 'OpaqueRef:vm', 'backup', []), { code: 'SR_BACKEND_FAILURE_44' })
    assert.equal(xapi.calls.length, 1)
  })

  it('blocks migration during a backup and lifts only the blocks it added', async () => {
    const xapi = new FakeXapi()
    const vm = xapi.add('VM', vmFields({ migrate_send: 'the admin said so' }))
    const unblock = await blockMigration(xapi, vm.$ref)
    assert.deepEqual(xapi.getObjectByRef(vm.$ref).blocked_operations, {
      migrate_send: 'the admin said so',
      pool_migrate: MIGRATION_BLOCKED_REASON,
    })
    await unblock()
    assert.deepEqual(xapi.getObjectByRef(vm.$ref).blocked_operations, { migrate_send: 'the admin said so' })
  })

  it('tags with the xo:backup keys and our own job key (never xo:backup:job), replacing existing values', async () => {
    const xapi = new FakeXapi()
    const vm = xapi.add('VM', { ...vmFields(), other_config: { [BACKUP_KEYS.job]: 'old', kept: 'yes' } })
    const date = new Date(Date.UTC(2026, 10, 26, 5, 50, 24, 792))
    await setOtherConfig(xapi, 'VM', vm.$ref, backupOtherConfig({ date, jobId: 'job-1', scheduleId: 'sched-1', vmUuid: 'u', deltaChainLength: 3 }))
    assert.deepEqual(xapi.getObjectByRef(vm.$ref).other_config, {
      kept: 'yes',
      'xo:backup:datetime': '20261126T05:50:24Z',
      'continuous-delta:job': 'job-1',
      'xo:backup:schedule': 'sched-1',
      'xo:backup:vm': 'u',
      'xo:backup:deltaChainLength': '3',
    })
    assert.equal(formatXapiDate(new Date(Date.UTC(2027, 0, 2, 3, 4, 5))), '20270102T03:04:05Z')
  })

  it('checks records at the boundary and names the missing fields', () => {
    const xapi = new FakeXapi()
    const vdi = xapi.add('VDI', { name_label: 'disk', SR: 'OpaqueRef:sr', virtual_size: 'big' })
    assert.throws(() => asVdi(vdi), /lacks the expected fields: name_description, virtual_size, is_a_snapshot/)
  })
})
