/**
 * Damage campaign: damage injected at seeded random places — a data block, the block table, the
 * footer, the checksum metadata (the sidecar, or the digest the restore point's metadata records);
 * in the full, in a middle delta or in the newest delta — then runs with merges past retention,
 * and after each phase a restore of every restore point and a `verify`:
 *
 * - every restore returns the exact bytes of its restore point (sha256 against the guest disk when
 *   the point was taken) or fails naming the damage (a VHD of the remote);
 * - `verify` names exactly the restore points whose restore fails;
 * - no merge spreads damage: the damaged blocks `verify` finds after the runs are among those it
 *   found right after the damage, and the restore points taken after the damage that do not read
 *   it restore exact; every run succeeds.
 *
 * `damage.test.ts` (npm test) runs a few seeded cases; `damage.campaign.ts` (npm run
 * test:campaign) many, on VHD files, VHD directories and once on S3. The seed is printed;
 * DAMAGE_SEED replays a campaign, DAMAGE_CASES sets how many cases it runs.
 */
import assert from 'node:assert/strict'
import type { VmRunResult } from '../../src/lifecycle/job.js'
import { runJob } from '../../src/lifecycle/run-job.js'
import { readRawStructures, sidecarPath } from '../../src/repository/integrity/index.js'
import { relativeToVmDir } from '../../src/repository/layout.js'
import { readMetadata, writeMetadata } from '../../src/repository/metadata.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { listMetadataFiles, restorePointOf, type RestorePoint } from '../../src/repository/restore-points.js'
import { isVhdAlias, resolveVhdAlias } from '../../src/repository/vhd-lib.js'
import { verifyRemote } from '../../src/repository/verify.js'
import { openChainRawStream } from '../../src/restore/read-chain.js'
import type { RemoteKind } from '../helpers/remotes.js'
import { BLOCK, MiB, startHarness, type Harness } from '../lifecycle/harness.js'
import { SeededRandom } from './random.js'

const DISK_SIZE = 16 * MiB
const KINDS = ['data', 'bat', 'footer', 'sidecar', 'digest'] as const
const TARGETS = ['full', 'middle', 'newest'] as const
type Kind = (typeof KINDS)[number]
type Target = (typeof TARGETS)[number]

export interface DamageCase {
  readonly kind: Kind
  readonly target: Target
  readonly retention: number
}

export interface DamageSuiteOptions {
  readonly remotes: readonly RemoteKind[]
  /** cases per remote */
  readonly cases: number
  readonly seed: number
  /** the cases to run first, whatever the seed draws */
  readonly fixed?: readonly DamageCase[]
}

function xor(buffer: Buffer, at: number, length: number): void {
  for (let i = at; i < at + length; i++) buffer[i] = buffer[i]! ^ 0xa5
}

/** reads `length` bytes at `position` of the file, applies `change`, writes them back (through the remote) */
async function patch(handler: RemoteHandler, path: string, position: number, length: number, change: (bytes: Buffer) => void): Promise<void> {
  const fd = await handler.openFile(path, 'r+')
  try {
    const bytes = Buffer.alloc(length)
    await handler.read(fd, bytes, position)
    change(bytes)
    await handler.write(fd, bytes, position)
  } finally {
    await handler.closeFile(fd)
  }
}

/** a whole object (a VHD directory's chunk, a sidecar): read, changed, written back */
async function patchObject(handler: RemoteHandler, path: string, change: (bytes: Buffer) => void): Promise<void> {
  const bytes = Buffer.from(await handler.readFile(path))
  change(bytes)
  await handler.writeFile(path, bytes, { flags: 'w' })
}

/** injects `kind` into the VHD at `vhd`; returns what was done */
async function injectDamage(handler: RemoteHandler, kind: Kind, vhd: string, metadataPath: string, vm: string, random: SeededRandom): Promise<string> {
  const raw = await readRawStructures(handler, vhd)
  const entries = raw.parsedHeader.maxTableEntries
  const directory = isVhdAlias(vhd)
  const data = directory ? (await resolveVhdAlias(handler, vhd)).replace(/^\/+/, '') : undefined
  const allocated: number[] = []
  for (let id = 0; id < entries; id++) {
    if (directory ? ((raw.bat[id >> 3]! << (id & 7)) & 0x80) !== 0 : raw.bat.readUInt32BE(id * 4) !== 0xffffffff) allocated.push(id)
  }
  const block = allocated[random.int(0, allocated.length)]
  switch (kind) {
    case 'data': {
      assert.ok(block !== undefined, `${vhd} holds no block`)
      const at = 512 + random.int(0, (BLOCK - 4) / 4) * 4
      if (data !== undefined) await patchObject(handler, `${data}/blocks/${Math.floor(block / 1000)}/${block % 1000}`, bytes => xor(bytes, at, 4))
      else await patch(handler, vhd, raw.bat.readUInt32BE(block * 4) * 512 + at, 4, bytes => xor(bytes, 0, 4))
      return `4 bytes of block ${block} of ${vhd} flipped`
    }
    case 'bat': {
      if (data !== undefined) {
        const id = random.int(0, entries)
        await patchObject(handler, `${data}/bat`, bytes => void (bytes[id >> 3] = bytes[id >> 3]! ^ (0x80 >> (id & 7))))
        return `block ${id}'s bit of the block table of ${vhd} flipped`
      }
      const id = block ?? 0
      await patch(handler, vhd, Number(raw.parsedHeader.tableOffset) + id * 4 + 3, 1, bytes => xor(bytes, 0, 1))
      return `block ${id}'s entry of the block table of ${vhd} changed`
    }
    case 'footer': {
      const at = random.int(8, 80)
      if (data !== undefined) await patchObject(handler, `${data}/footer`, bytes => xor(bytes, at, 1))
      else await patch(handler, vhd, at, 1, bytes => xor(bytes, 0, 1))
      return `byte ${at} of the footer of ${vhd} flipped`
    }
    case 'sidecar': {
      await patchObject(handler, sidecarPath(vhd), bytes => xor(bytes, random.int(24, bytes.length), 1))
      return `a byte of the checksum sidecar of ${vhd} flipped`
    }
    case 'digest': {
      const metadata = await readMetadata(handler, metadataPath)
      const relative = relativeToVmDir(vm, vhd)
      const digests = { ...(metadata.continuousDelta?.blockChecksums ?? {}) }
      assert.ok(digests[relative] !== undefined, `${metadataPath} records no digest for ${vhd}`)
      digests[relative] = (digests[relative]!.startsWith('0') ? '1' : '0') + digests[relative]!.slice(1)
      await writeMetadata(handler, metadataPath, { ...metadata, continuousDelta: { ...metadata.continuousDelta!, blockChecksums: digests } })
      return `the digest ${metadataPath} records for ${vhd} changed`
    }
  }
}

export function damageSuite(opts: DamageSuiteOptions): void {
  for (const remote of opts.remotes) {
    describe(`damage campaign [${remote}]`, function () {
      this.timeout(3_600_000)
      let harness: Harness

      before(async function () {
        harness = await startHarness({ inventory: 'empty', remote })
      })

      after(async function () {
        await harness?.close()
      })

      it(`${opts.cases} cases of seeded damage (seed ${opts.seed}): exact bytes or a named failure, verify names exactly the damaged points, no merge spreads damage`, async function () {
        console.log(`      damage campaign seed ${opts.seed} (replay: DAMAGE_SEED=${opts.seed} DAMAGE_CASES=${opts.cases})`)
        const random = new SeededRandom(opts.seed ^ (remote.length * 0x9e3779b1))
        const drawn: DamageCase[] = [...(opts.fixed ?? [])]
        while (drawn.length < opts.cases) {
          drawn.push({ kind: KINDS[random.int(0, KINDS.length)]!, target: TARGETS[random.int(0, TARGETS.length)]!, retention: random.int(2, 4) })
        }
        const tally = new Map<string, number>()
        for (const [n, spec] of drawn.slice(0, opts.cases).entries()) {
          const outcome = await runCase(harness, spec, random, `case ${n} (${spec.kind} in the ${spec.target}, retention ${spec.retention})`)
          tally.set(outcome, (tally.get(outcome) ?? 0) + 1)
        }
        console.log(`      outcomes: ${[...tally].map(([k, v]) => `${k} ×${v}`).join(', ')}`)
      })
    })
  }
}

/** one case on a fresh VM; returns a short description of what happened, for the tally */
async function runCase(harness: Harness, spec: DamageCase, random: SeededRandom, label: string): Promise<string> {
  const { sim } = harness.pool
  const { vm, vdis } = sim.createVm({ name: label, disks: [{ name: 'root', size: DISK_SIZE }] })
  const disk = vdis[0]!
  /** restore point id → sha256 of the guest disk when it was taken */
  const expected = new Map<string, string>()
  let before = new Set<string>()

  const run = async (): Promise<VmRunResult> => {
    for (let w = random.int(1, 3); w > 0; w--) {
      const length = random.int(1, 64) * 4096
      await sim.writeGuest(disk, random.int(0, (DISK_SIZE - length) / 4096) * 4096, random.bytes(length))
    }
    const result = (await runJob(harness.job([vm], { retention: spec.retention }), harness.env())).vms[0]!
    assert.equal(result.status, 'success', `${label}: ${result.error}`)
    const ids = await listMetadataFiles(harness.handler, vm)
    const fresh = ids.filter(id => !before.has(id) && !expected.has(id))
    assert.equal(fresh.length, 1, `${label}: one new restore point`)
    expected.set(fresh[0]!, await sim.hashVdi(disk))
    before = new Set(ids)
    return result
  }

  const points = async (): Promise<RestorePoint[]> => {
    const out: RestorePoint[] = []
    for (const id of await listMetadataFiles(harness.handler, vm)) out.push(restorePointOf(id, await readMetadata(harness.handler, id)))
    return out
  }

  /** restores every point and verifies: the points whose restore fails, and the damaged blocks verify names */
  const check = async (phase: string): Promise<{ failed: string[]; blocks: Set<number> }> => {
    const failed: string[] = []
    for (const point of await points()) {
      const vhd = point.disks[0]!.vhd
      try {
        const { stream } = await openChainRawStream(harness.handler, vhd, { restorePoint: point.id })
        const hash = (await import('node:crypto')).createHash('sha256')
        for await (const chunk of stream) hash.update(chunk as Buffer)
        assert.equal(hash.digest('hex'), expected.get(point.id), `${label}, ${phase}: ${point.id} restored other bytes`)
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error
        const e = error as Error & { code?: string }
        assert.ok(['DATA_DAMAGED', 'CHAIN_BROKEN'].includes(e.code ?? ''), `${label}, ${phase}: ${point.id} failed with ${e.code}: ${e.message}`)
        assert.match(e.message, /xo-vm-backups\/[^ ]+\.vhd/, `${label}, ${phase}: the failure of ${point.id} names no VHD: ${e.message}`)
        failed.push(point.id)
      }
    }
    const report = await verifyRemote(harness.handler, { vm })
    const bad = report.restorePoints.filter(p => !p.ok).map(p => p.id)
    assert.deepEqual(
      bad.sort(),
      [...failed].sort(),
      `${label}, ${phase}: verify names ${JSON.stringify(bad)}, the restores failing are ${JSON.stringify(failed)}: ${JSON.stringify(report.restorePoints.flatMap(p => p.problems))}`,
    )
    const blocks = new Set(report.restorePoints.flatMap(p => p.problems.flatMap(q => (q.block === undefined ? [] : [q.block]))))
    return { failed, blocks }
  }

  // restore points within retention, then the damage
  const count = spec.target === 'middle' ? Math.max(3, spec.retention) : random.int(spec.target === 'newest' ? 2 : 1, spec.retention + 1)
  for (let i = 0; i < count; i++) await run()
  const listed = await points()
  const index = spec.target === 'full' ? 0 : spec.target === 'newest' ? listed.length - 1 : random.int(1, listed.length - 1)
  const victim = listed[index]!
  const what = await injectDamage(harness.handler, spec.kind, victim.disks[0]!.vhd, victim.id, vm, random)
  const damagedAt = new Set(listed.map(p => p.id))
  const first = await check(`after ${what}`)

  // runs with merges past retention
  const runs = spec.retention + random.int(1, 3)
  let refused = 0
  for (let i = 0; i < runs; i++) {
    const result = await run()
    if (result.warnings.some(w => w.includes('damaged data, not merged'))) refused++
  }
  const last = await check(`after ${runs} runs past retention`)
  // no merge spreads damage: no new damaged block, and the points taken after the damage fail only when they read it
  for (const block of last.blocks) assert.ok(first.blocks.has(block), `${label}: block ${block} is damaged after the runs, not before`)
  for (const id of last.failed) {
    if (damagedAt.has(id)) continue
    assert.ok(first.failed.length > 0 || first.blocks.size > 0, `${label}: ${id}, taken after the damage, fails though nothing failed right after it`)
  }
  return `${spec.kind}: ${first.failed.length > 0 ? 'found' : 'harmless'}${refused > 0 ? ', merge refused' : ''}`
}
