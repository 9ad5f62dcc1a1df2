/**
 * Listing and retention on a remote holding many VMs and restore points:
 * `listRestorePointsWithStatus` (what the plugin API's `listRestorePoints` calls: each point with
 * whether it can be restored), the DR CLI's `list` (a process, as a user
 * runs it), and a run's retention pass over every VM (nothing past retention: the pass decides
 * so from every `.json` and every VHD header), against reading the same `.json` files plainly
 * (readdir, readFile, JSON.parse), in the worker and in a fresh process.
 *
 * The remote is written here in Xen Orchestra's layout: per VM, `<ts>.json` metadata (built from
 * a restore point XO wrote, test/fixtures/xo-delta-metadata.example.json) and, per disk, a chain
 * of small VHD files (a full with one block, then deltas of no block).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runInWorker } from '../lib/child.js'
import { BlockContent, type ChainModel, planChain, writeVhdFile } from '../lib/fixtures.js'
import { Prng } from '../lib/prng.js'
import { type CaseContext, type ImplResult, Series, rotate } from '../lib/series.js'
import { formatUuid } from '../lib/vhd-format.js'
import type { ListingImpl } from '../tasks/protocol.js'
import { BENCH_JOB } from './layout.js'

export interface ListingShape {
  readonly vms: number
  readonly pointsPerVm: number
  readonly disksPerVm: number
}

export interface ListingCaseRun {
  readonly results: Readonly<Record<ListingImpl, ImplResult>>
  readonly points: number
}

const MiB = 2 ** 20
const TEMPLATE = new URL('../../../test/fixtures/xo-delta-metadata.example.json', import.meta.url)

type Json = Record<string, unknown>

function uuidOf(prng: Prng): string {
  const bytes = prng.fill(Buffer.alloc(16))
  bytes[6] = (bytes[6]! & 0x0f) | 0x40
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  return formatUuid(bytes)
}

/** a restore point's metadata: XO's example with this VM's identifiers, disks and VHD paths */
function metadataOf(template: Json, vm: { uuid: string; name: string }, disks: { vdi: string; vhd: string; differencing: boolean }[], timestampMs: number, prng: Prng): Json {
  const templateVdi = Object.values(template['vdis'] as Record<string, Json>)[0]!
  const templateVbd = Object.values(template['vbds'] as Record<string, Json>)[0]!
  const vdis: Record<string, Json> = {}
  const vbds: Record<string, Json> = {}
  const vhds: Record<string, string> = {}
  const isVhdDifferencing: Record<string, boolean> = {}
  disks.forEach((disk, i) => {
    const ref = `OpaqueRef:${uuidOf(prng)}`
    const vbdRef = `OpaqueRef:${uuidOf(prng)}`
    vdis[ref] = {
      ...templateVdi,
      uuid: uuidOf(prng),
      name_label: `${vm.name} disk ${i}`,
      VBDs: [vbdRef],
      other_config: { ...(templateVdi['other_config'] as Json), 'xo:backup:vm': vm.uuid, 'xo:backup:job': BENCH_JOB },
      $snapshot_of$uuid: disk.vdi,
    }
    vbds[vbdRef] = { ...templateVbd, uuid: uuidOf(prng), VDI: ref, userdevice: String(i) }
    vhds[ref] = disk.vhd
    isVhdDifferencing[ref] = disk.differencing
  })
  return {
    ...template,
    jobId: BENCH_JOB,
    timestamp: timestampMs,
    vm: { ...(template['vm'] as Json), uuid: vm.uuid, name_label: vm.name },
    vmSnapshot: { ...(template['vmSnapshot'] as Json), uuid: uuidOf(prng), name_label: vm.name },
    vdis,
    vbds,
    vhds,
    isVhdDifferencing,
    size: MiB,
  }
}

/** writes the remote; returns the number of restore points */
async function writeRemote(root: string, shape: ListingShape, seed: number): Promise<number> {
  const template = JSON.parse(await readFile(TEMPLATE, 'utf8')) as Json
  const prng = new Prng(seed)
  const content = new BlockContent(seed)
  let points = 0
  for (let v = 0; v < shape.vms; v++) {
    const vm = { uuid: uuidOf(prng), name: `bench-vm-${v}` }
    const vmDir = join(root, 'xo-vm-backups', vm.uuid)
    const chains: { vdi: string; model: ChainModel }[] = []
    for (let d = 0; d < shape.disksPerVm; d++) {
      const model = planChain(prng.nextUint32(), {
        virtualSize: 64 * MiB,
        fullBlocks: 1,
        deltas: Array.from({ length: shape.pointsPerVm - 1 }, () => ({ blocks: 0, overlapping: 0 })),
      })
      chains.push({ vdi: uuidOf(prng), model })
    }
    await mkdir(vmDir, { recursive: true })
    for (let p = 0; p < shape.pointsPerVm; p++) {
      const disks: { vdi: string; vhd: string; differencing: boolean }[] = []
      for (const { vdi, model } of chains) {
        const dir = join(vmDir, 'vdis', BENCH_JOB, vdi)
        await writeVhdFile(dir, model, p, content, { sync: false })
        disks.push({ vdi, vhd: `vdis/${BENCH_JOB}/${vdi}/${model.layers[p]!.stem}.vhd`, differencing: p > 0 })
      }
      const layer = chains[0]!.model.layers[p]!
      await writeFile(join(vmDir, `${layer.stem}.json`), JSON.stringify(metadataOf(template, vm, disks, layer.timestampMs, prng)))
      points++
    }
  }
  return points
}

const IMPLS: readonly ListingImpl[] = ['api', 'cli', 'retention', 'plain', 'plain-process']

export async function runListingCase(ctx: CaseContext, shape: ListingShape): Promise<ListingCaseRun> {
  const root = join(ctx.workDir, 'listing')
  ctx.log(`listing: writing ${shape.vms} VMs × ${shape.pointsPerVm} restore points`)
  const points = await writeRemote(root, shape, ctx.seed + 7)
  const series = new Map(IMPLS.map(impl => [impl, new Series()]))
  for (let r = 0; r < ctx.rounds; r++) {
    for (const impl of rotate(IMPLS, r)) {
      const s = series.get(impl)!
      if (!s.active) continue
      const result = s.record(
        await runInWorker(
          { kind: 'listing', impl, root, jobId: BENCH_JOB, keep: shape.pointsPerVm },
          { cpuProfileDir: impl === 'plain' || impl === 'plain-process' ? undefined : ctx.cpuProfileDir },
        ),
      )
      // every implementation found every restore point (retention: and removed nothing)
      if (result !== undefined) s.verify(result.detail?.['points'] === points && result.detail?.['removed'] === 0)
    }
    ctx.log(`listing: round ${r + 1}/${ctx.rounds} done`)
  }
  return { results: Object.fromEntries([...series].map(([impl, s]) => [impl, s.result()])) as Record<ListingImpl, ImplResult>, points }
}
