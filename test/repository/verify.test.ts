import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { open, readdir, truncate, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { vhdDataPath, vhdPath } from '../../src/repository/layout.js'
import { resolveVhdAlias } from '../../src/repository/vhd-lib.js'
import { verifyRemote, type Problem, type VerifyReport } from '../../src/repository/verify.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { writeBackups, type WrittenPoint } from './backup-chain.js'
import { BLOCK, exportStream, seededChain } from './exports.js'
import { writeTestRestorePoint } from './records.js'
import { openTempRemote, type TempRemote } from './temp-remote.js'

const VM = '997e38ca-c27e-4baa-8e5f-19d95c27c74b'
const DISK = 'f5d48e13-15db-4d9e-a2b3-a53af12b0b04'
const JOB = 'job-1'
const SIZE = 16 * 1024 * 1024

function problemsOf(report: VerifyReport, id: string): Problem[] {
  const point = report.restorePoints.find(p => p.id === id)
  assert.ok(point, `no report for ${id}`)
  return [...point.problems]
}

function codes(problems: readonly Problem[]): string[] {
  return [...new Set(problems.map(p => p.code))].sort()
}

/** flips one byte in the middle of the first block of a VHD (file or directory) */
async function flipByteInBlock(remote: TempRemote, vhd: string, directory: boolean): Promise<void> {
  let file: string
  let offset: number
  if (directory) {
    const data = await resolveVhdAlias(remote.handler, vhd)
    const blocks = join(remote.root, data, 'blocks', '0')
    file = join(blocks, (await readdir(blocks)).sort()[0]!)
    offset = 512 + BLOCK / 2
  } else {
    file = join(remote.root, vhd)
    // footer + header + one-sector BAT, then the first block (bitmap + data)
    offset = 512 + 1024 + 512 + 512 + BLOCK / 2
  }
  const handle = await open(file, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await handle.read(byte, 0, 1, offset)
    byte[0] = byte[0]! ^ 0xff
    await handle.write(byte, 0, 1, offset)
  } finally {
    await handle.close()
  }
}

for (const directory of [false, true]) {
  describe(`verifyRemote (${directory ? 'VHD directories' : 'VHD files'})`, () => {
    let remote: TempRemote
    let points: WrittenPoint[]
    beforeEach(async () => {
      remote = await openTempRemote()
      points = await writeBackups(remote.handler, VM, JOB, { [DISK]: seededChain(SIZE, 3, 7) }, { directory })
    })
    afterEach(async () => {
      await remote.close()
    })

    it('reports a clean remote as clean', async () => {
      const report = await verifyRemote(remote.handler)
      assert.equal(report.ok, true)
      assert.deepEqual(report.problems, [])
      assert.deepEqual(report.restorePoints.map(p => [p.id, p.ok, p.problems.length]), points.map(p => [p.metadata, true, 0]))
    })

    it('finds a flipped byte inside a block through the recorded checksum, for every restore point using it', async () => {
      await flipByteInBlock(remote, points[1]!.vhds[DISK]!, directory)
      const report = await verifyRemote(remote.handler, { vm: VM })
      assert.equal(report.ok, false)
      assert.deepEqual(codes(problemsOf(report, points[0]!.metadata)), [])
      for (const point of points.slice(1)) {
        const problems = problemsOf(report, point.metadata)
        assert.deepEqual(codes(problems), ['block-checksum-mismatch'])
        assert.equal(problems[0]!.path, points[1]!.vhds[DISK])
        assert.match(problems[0]!.message, /^block \d+: its sha256 differs/)
      }
    })

    it('reads every block and says how many; --sample reads a seeded random share with the same code', async () => {
      const full = await verifyRemote(remote.handler, { vm: VM })
      const blocks = full.read.blocks
      assert.ok(blocks > 4, `${blocks} blocks read`)
      assert.equal(full.read.bytes, full.read.blocks * (BLOCK + 512))
      const sampled = await verifyRemote(remote.handler, { vm: VM, sample: { percent: 30, seed: 7 } })
      assert.deepEqual(sampled.sample, { percent: 30, seed: 7 })
      assert.ok(sampled.read.blocks > 0 && sampled.read.blocks < full.read.blocks, `${sampled.read.blocks} of ${full.read.blocks}`)
      assert.deepEqual((await verifyRemote(remote.handler, { vm: VM, sample: { percent: 30, seed: 7 } })).read, sampled.read)
      assert.deepEqual((await verifyRemote(remote.handler, { vm: VM, sample: { percent: 100, seed: 1 } })).read, full.read)
      // a sample that covers the damaged block finds it, with the same problem as the full verify
      await flipByteInBlock(remote, points[1]!.vhds[DISK]!, directory)
      const all = await verifyRemote(remote.handler, { vm: VM, sample: { percent: 100, seed: 3 } })
      assert.deepEqual(codes(problemsOf(all, points[1]!.metadata)), ['block-checksum-mismatch'])
      await assert.rejects(verifyRemote(remote.handler, { sample: { percent: 0, seed: 1 } }), { code: 'INVALID_PARAMETER' })
    })

    it('finds a truncated VHD (or a missing block of a VHD directory)', async () => {
      const vhd = points[2]!.vhds[DISK]!
      if (directory) {
        const data = await resolveVhdAlias(remote.handler, vhd)
        const blocks = join(remote.root, data, 'blocks', '0')
        await unlink(join(blocks, (await readdir(blocks)).sort()[0]!))
      } else {
        await truncate(join(remote.root, vhd), 512 + 1024 + 512 + 512 + BLOCK)
      }
      const report = await verifyRemote(remote.handler)
      assert.equal(report.ok, false)
      for (const point of points.slice(2)) {
        const found = codes(problemsOf(report, point.metadata).filter(p => p.path === vhd))
        assert.ok(found.includes(directory ? 'missing-block' : 'vhd-truncated'), `${point.metadata}: ${found}`)
      }
      assert.deepEqual(codes(problemsOf(report, points[1]!.metadata)), [])
    })

    it('finds a missing parent and a .json pointing at nothing, and reports orphans as hints', async () => {
      const full = points[0]!.vhds[DISK]!
      if (directory) await remote.handler.rmtree(vhdDataPath(full))
      await remote.handler.unlink(full)
      const ghost = vhdPath(VM, JOB, DISK, '20261126T070000Z', directory)
      const ghostPoint = await writeTestRestorePoint(remote.handler, VM, JOB, new Date('2026-11-26T07:00:00Z'), [{ vdi: DISK, vhd: ghost, differencing: true }])
      const orphan = vhdPath(VM, JOB, randomUUID(), '20261126T071000Z', directory)
      await writeVhd(remote.handler, orphan, exportStream(seededChain(SIZE, 0, 8)[0]!), { uuid: randomUUID() })

      const report = await verifyRemote(remote.handler)
      assert.equal(report.ok, false)
      assert.deepEqual(codes(problemsOf(report, points[0]!.metadata)), ['missing-vhd'])
      for (const point of points.slice(1)) {
        const problems = problemsOf(report, point.metadata)
        assert.deepEqual(codes(problems), ['missing-parent'])
        assert.equal(problems[0]!.path, points[1]!.vhds[DISK])
      }
      assert.deepEqual(codes(problemsOf(report, ghostPoint)), ['missing-vhd'])
      assert.deepEqual(report.problems.map(p => [p.code, p.severity, p.path]), [['orphan-vhd', 'hint', orphan]])
    })

    it('finds a damaged header (checksum)', async () => {
      const vhd = points[1]!.vhds[DISK]!
      const file = directory ? join(remote.root, await resolveVhdAlias(remote.handler, vhd), 'header') : join(remote.root, vhd)
      const handle = await open(file, 'r+')
      try {
        // one byte of the header's reserved area (header offset 1000; the file's header starts at 512)
        await handle.write(Buffer.from([0x5a]), 0, 1, (directory ? 0 : 512) + 1000)
      } finally {
        await handle.close()
      }
      const report = await verifyRemote(remote.handler)
      for (const point of points.slice(1)) {
        const problems = problemsOf(report, point.metadata).filter(p => p.path === vhd)
        assert.deepEqual(codes(problems), ['vhd-unreadable'])
        assert.match(problems[0]!.message, /header checksum/)
      }
      assert.deepEqual(codes(problemsOf(report, points[0]!.metadata)), [])
    })

    it('reports a restore point whose metadata is not valid and keeps going', async () => {
      await remote.handler.writeFile(points[1]!.metadata, JSON.stringify({ version: '2.0.0', mode: 'delta' }), { flags: 'w' })
      const report = await verifyRemote(remote.handler)
      const problems = problemsOf(report, points[1]!.metadata)
      assert.deepEqual(codes(problems), ['metadata-invalid'])
      assert.match(problems[0]!.message, /jobId/)
      assert.equal(report.restorePoints.length, points.length)
      assert.deepEqual(codes(problemsOf(report, points[2]!.metadata)), [])
    })

    it('never writes', async () => {
      const before = await snapshot(remote.root)
      await flipByteInBlock(remote, points[0]!.vhds[DISK]!, directory)
      const damaged = await snapshot(remote.root)
      await verifyRemote(remote.handler)
      assert.deepEqual(await snapshot(remote.root), damaged)
      assert.deepEqual([...before.keys()], [...damaged.keys()])
    })
  })
}

/** path → size and mtime of every file under `root` */
async function snapshot(root: string, dir = ''): Promise<Map<string, string>> {
  const { stat } = await import('node:fs/promises')
  const files = new Map<string, string>()
  for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`
    if (entry.isDirectory()) for (const [k, v] of await snapshot(root, rel)) files.set(k, v)
    else {
      const s = await stat(join(root, rel))
      files.set(rel, `${s.size}:${s.mtimeMs}`)
    }
  }
  return new Map([...files].sort())
}
