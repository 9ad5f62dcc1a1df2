/**
 * The lifecycle on a pool with changed block tracking and NBD (XCP-ng 8.3, its network of purpose
 * `nbd`): a full, then deltas read over NBD (only the blocks CBT lists), merged past retention, the
 * reference snapshot reduced to its CBT metadata between runs; chains written by either transport
 * or both restore byte for byte; whatever breaks the tracking gives a full with a warning naming it.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'

import type { JobSpec, VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { cbtLogBytes } from '../simulator/cbt.js'
import { BLOCK, hashRestoredDisk, MiB, RecordingReporter, remoteProblems, restorePointsOf, startHarness } from '../lifecycle/harness.js'
import type { Harness } from '../lifecycle/harness.js'

const DISK = 24 * MiB

function single(vms: readonly VmRunResult[]): VmRunResult {
  assert.equal(vms.length, 1)
  return vms[0]!
}

describe('lifecycle: changed block tracking and NBD (profile xcp-ng-8.3-nbd)', function () {
  let harness: Harness
  let counter = 0

  before(async function () {
    harness = await startHarness({ profile: 'xcp-ng-8.3-nbd', inventory: 'empty' })
  })
  after(async function () {
    await harness?.close()
  })
  afterEach(() => {
    harness.pool.sim.faults.reset()
    harness.pool.sim.setNetworkPurpose(['nbd'])
  })

  /** a VM with one disk, data written, and a job of its own */
  async function newVm(): Promise<{ vm: string; disk: string; job: (overrides?: Partial<JobSpec>) => JobSpec }> {
    const name = `cbt-${++counter}`
    const { vm, vdis } = harness.pool.sim.createVm({ name, disks: [{ name: 'root', size: DISK }], running: false })
    const disk = vdis[0]!
    await harness.pool.sim.writeGuest(disk, 0, randomBytes(300 * 1024))
    await harness.pool.sim.writeGuest(disk, 7 * MiB + 123, randomBytes(3 * MiB))
    return { vm, disk, job: (overrides = {}) => harness.job([vm], { id: `job-${name}`, ...overrides }) }
  }

  /** runs the job; the result, the warnings, and the guest's hash at that point */
  async function run(job: JobSpec, disk: string) {
    const reporter = new RecordingReporter()
    const expected = await harness.pool.sim.hashVdi(disk)
    harness.pool.sim.clearCalls()
    const result = single((await runJob(job, harness.env(reporter))).vms)
    assert.equal(result.status, 'success', result.error)
    const calls = harness.pool.sim.calls
    return {
      result,
      reporter,
      expected,
      mode: result.disks[0]!.mode,
      nbdReads: calls.some(call => call.method === 'VDI.list_changed_blocks') && !calls.some(call => call.method === 'export_raw_vdi' && (call.params[0] as Record<string, string>).base !== undefined),
      exports: calls.filter(call => call.method === 'export_raw_vdi').length,
    }
  }

  async function referenceDisk(vm: string): Promise<{ uuid: string; type: unknown }> {
    const snapshots = harness.pool.sim.findVm(vm).snapshots as string[]
    assert.equal(snapshots.length, 1, 'one reference snapshot')
    const [vdi] = harness.pool.sim.vdisOf(harness.pool.sim.record('VM', snapshots[0]!).uuid)
    return { uuid: vdi!.uuid, type: vdi!.type }
  }

  async function assertRestores(vm: string, jobId: string, hashes: readonly string[], disk: string): Promise<void> {
    const points = await restorePointsOf(harness.handler, vm, jobId)
    assert.equal(points.length, hashes.length)
    for (const [index, point] of points.entries()) {
      assert.equal(await hashRestoredDisk(harness.handler, point, disk), hashes[index], `restore point ${index + 1}`)
    }
    assert.deepEqual(await remoteProblems(harness.handler, vm), [])
  }

  it('full, then deltas over NBD of only the changed blocks, merged past retention; restores byte-exact; the SR keeps only CBT metadata of the reference', async function () {
    const { vm, disk, job } = await newVm()
    const spec = job({ retention: 3, nbdConnections: 3 })
    const first = await run(spec, disk)
    assert.equal(first.mode, 'full')
    assert.equal(first.exports, 1, 'a full is read with the HTTP export')
    const hashes = [first.expected]

    // the reference's bytes on the SR fall to its CBT log
    const reference = await referenceDisk(vm)
    assert.equal(reference.type, 'cbt_metadata')
    assert.equal(await harness.pool.sim.bytesOnSr(reference.uuid), cbtLogBytes(DISK))
    assert.ok(cbtLogBytes(DISK) < 64 * 1024)

    const writes: [number, number][] = [
      [5 * BLOCK - 100, 300], // across two VHD blocks
      [DISK - 10, 10], // the last block
      [64 * 1024 * 3 + 7, 1], // one byte
      [11 * MiB, 2 * MiB], // two VHD blocks
    ]
    for (const [offset, length] of writes) {
      await harness.pool.sim.writeGuest(disk, offset, randomBytes(length))
      const opened = harness.pool.sim.nbd.opened
      const next = await run(spec, disk)
      assert.equal(next.mode, 'delta')
      assert.ok(next.nbdReads, 'read over NBD, not with the HTTP export')
      assert.equal(next.exports, 0)
      assert.equal(harness.pool.sim.nbd.opened - opened, 3, 'three NBD connections')
      const blocks = new Set([Math.floor(offset / BLOCK), Math.floor((offset + length - 1) / BLOCK)]).size
      assert.ok(next.result.disks[0]!.size < (blocks + 1) * (BLOCK + 4096) + 64 * 1024, `only the ${blocks} changed block(s) written`)
      assert.equal((await referenceDisk(vm)).type, 'cbt_metadata')
      hashes.push(next.expected)
    }
    await assertRestores(vm, spec.id, hashes.slice(-3), disk)
  })

  it('a chain that mixes both transports (export → nbd → export → nbd) restores byte-exact', async function () {
    const { vm, disk, job } = await newVm()
    const hashes: string[] = []
    const byExport = await run(job({ transport: 'export' }), disk)
    assert.equal(byExport.mode, 'full')
    assert.notEqual((await referenceDisk(vm)).type, 'cbt_metadata', 'the HTTP export keeps the reference data')
    hashes.push(byExport.expected)

    // switched to NBD: the reference predates CBT, so this delta is read with the HTTP export
    await harness.pool.sim.writeGuest(disk, 3 * MiB, randomBytes(4096))
    const switched = await run(job({ transport: 'nbd' }), disk)
    assert.equal(switched.mode, 'delta')
    assert.ok(!switched.nbdReads)
    assert.ok(switched.reporter.log.some(entry => /delta read with the HTTP export: the reference snapshot was taken before changed block tracking/.test(entry.message)))
    assert.equal((await referenceDisk(vm)).type, 'cbt_metadata')
    hashes.push(switched.expected)

    await harness.pool.sim.writeGuest(disk, 9 * MiB, randomBytes(4096))
    const overNbd = await run(job({ transport: 'nbd' }), disk)
    assert.equal(overNbd.mode, 'delta')
    assert.ok(overNbd.nbdReads)
    hashes.push(overNbd.expected)

    // back to the HTTP export: the reference holds only CBT metadata, no base for an export
    await harness.pool.sim.writeGuest(disk, 1 * MiB, randomBytes(4096))
    const back = await run(job({ transport: 'export' }), disk)
    assert.equal(back.mode, 'full')
    assert.ok(back.result.warnings.some(warning => /holds only its changed block tracking metadata/.test(warning)), back.result.warnings.join('\n'))
    hashes.push(back.expected)

    await harness.pool.sim.writeGuest(disk, 13 * MiB, randomBytes(4096))
    const again = await run(job({ transport: 'auto' }), disk)
    assert.equal(again.mode, 'delta')
    assert.ok(again.nbdReads, 'the export run kept CBT on: its snapshot carries the tracking')
    hashes.push(again.expected)
    await assertRestores(vm, job().id, hashes, disk)
  })

  describe('whatever breaks the tracking gives a full of that disk, with a warning naming it', function () {
    const cases: { name: string; pattern: RegExp; breakIt: (ctx: { vm: string; disk: string }) => Promise<void> }[] = [
      {
        name: 'CBT disabled by someone',
        pattern: /changed block tracking was disabled on the disk since the reference snapshot/,
        breakIt: async ({ disk }) => void (await harness.xapi.call('VDI.disable_cbt', harness.pool.sim.record('VDI', disk).$ref)),
      },
      {
        name: 'the disk migrated to another SR',
        pattern: /the disk moved from SR "Local storage" to SR "Shared storage"/,
        breakIt: async ({ disk }) => harness.pool.sim.migrateVdi(disk, harness.pool.sim.secondSr()),
      },
      {
        name: 'the CBT-metadata snapshot deleted',
        pattern: /holds no snapshot of this disk/,
        breakIt: async ({ vm }) => {
          const reference = await referenceDisk(vm)
          await harness.xapi.callAsync('VDI.destroy', harness.pool.sim.record('VDI', reference.uuid).$ref)
        },
      },
      {
        name: 'VDI.list_changed_blocks failing',
        pattern: /VDI\.list_changed_blocks failed: SR_BACKEND_FAILURE_460/,
        breakIt: async () => harness.pool.sim.faults.failNextCall('VDI.list_changed_blocks', 'SR_BACKEND_FAILURE_460', ['', 'Failed to calculate changed blocks for given VDIs.', '']),
      },
    ]
    for (const { name, pattern, breakIt } of cases) {
      it(name, async function () {
        const { vm, disk, job } = await newVm()
        const first = await run(job(), disk)
        await harness.pool.sim.writeGuest(disk, 2 * MiB, randomBytes(4096))
        await breakIt({ vm, disk })
        const broken = await run(job(), disk)
        assert.equal(broken.mode, 'full')
        assert.ok(broken.result.warnings.some(warning => pattern.test(warning)), broken.result.warnings.join('\n'))
        // and the tracking is whole again for the next run
        await harness.pool.sim.writeGuest(disk, 4 * MiB, randomBytes(4096))
        const next = await run(job(), disk)
        assert.equal(next.mode, 'delta')
        assert.ok(next.nbdReads)
        await assertRestores(vm, job().id, [first.expected, broken.expected, next.expected], disk)
      })
    }
  })

  it('an NBD connection cut mid-read is read again on another; a refused export fails the run clearly and the next run succeeds', async function () {
    const { vm, disk, job } = await newVm()
    const hashes = [(await run(job(), disk)).expected]
    await harness.pool.sim.writeGuest(disk, 6 * MiB, randomBytes(3 * MiB))
    harness.pool.sim.faults.cutNbdReadAfter(100_000)
    const cut = await run(job(), disk)
    assert.equal(cut.mode, 'delta')
    assert.ok(cut.reporter.log.some(entry => /NBD read at \d+ sent again/.test(entry.message)))
    hashes.push(cut.expected)

    await harness.pool.sim.writeGuest(disk, 1 * MiB, randomBytes(4096))
    const reporter = new RecordingReporter()
    for (let i = 0; i < 3; i++) harness.pool.sim.faults.refuseNextNbdExport('the export is not available')
    // (one-shot fault: refuses one connection; with one connection the run fails)
    const failed = single((await runJob(job({ nbdConnections: 1 }), harness.env(reporter))).vms)
    assert.equal(failed.status, 'failure')
    assert.match(failed.error ?? '', /NBD read of disk "root": .*export ".*" refused.*the export is not available/)
    const retried = await run(job(), disk)
    assert.equal(retried.mode, 'delta')
    hashes.push(retried.expected)
    await assertRestores(vm, job().id, hashes, disk)
  })

  it('auto falls back to the HTTP export with a log line when no network has an NBD purpose; nbd warns', async function () {
    const { disk, job } = await newVm()
    harness.pool.sim.setNetworkPurpose([])
    const auto = await run(job(), disk)
    assert.ok(auto.reporter.log.some(entry => entry.level === 'info' && /read with the HTTP export, not NBD: no network of the pool \(XCP-ng 8\.3\.0\) has the purpose nbd or insecure_nbd \(give a network of the pool the purpose nbd: xe network-param-add/.test(entry.message)))
    await harness.pool.sim.writeGuest(disk, 1 * MiB, randomBytes(4096))
    const forced = await run(job({ transport: 'nbd' }), disk)
    assert.equal(forced.mode, 'delta')
    assert.ok(forced.result.warnings.some(warning => /read with the HTTP export, not NBD/.test(warning)))
  })
})
