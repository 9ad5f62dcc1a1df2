/**
 * The demo (`npm run demo`): a simulated XCP-ng pool and the xo-server host double on loopback,
 * the built plugin loaded in it. A job is created through the API (xo-lib), run several times
 * with guest writes in between (a full, then deltas, then merges past retention); the oldest and
 * newest restore points are restored and their bytes compared (sha256) with the guest disk as
 * it was at that run. Prints a report, writes it to docs/demo-report.txt, exits 1 if a check fails.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { REPO_ROOT, startHostDouble } from '../helpers/host.js'
import { startSimulatedPool } from '../helpers/pool.js'

const MiB = 1024 * 1024
const RUNS = 6
const RETENTION = 3

interface RunView {
  readonly status: string
  readonly vms: readonly {
    readonly status: string
    readonly error?: string
    readonly restorePoint?: string
    readonly disks: readonly { readonly name: string; readonly mode: string; readonly size: number; readonly durationMs: number }[]
    readonly excluded: readonly { readonly name: string; readonly reason: string }[]
    readonly merges?: readonly { readonly vdi: string; readonly blocks: number }[]
  }[]
}
interface PointView {
  readonly id: string
  readonly timestamp: number
  readonly disks: readonly { readonly name: string; readonly differencing: boolean }[]
}

function size(bytes: number): string {
  return bytes >= MiB ? `${(bytes / MiB).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`
}

/** a deterministic pattern of guest writes per run: a few 64 KiB writes at 1 MiB-aligned offsets */
function writesOf(run: number, diskSize: number): number[] {
  const hash = createHash('sha256').update(`run ${run}`).digest()
  return [0, 1, 2].map(index => ((hash.readUInt32BE(index * 4) % (diskSize / MiB - 1)) * MiB))
}

async function main(): Promise<number> {
  const lines: string[] = []
  const say = (line = ''): void => {
    lines.push(line)
    process.stdout.write(`${line}\n`)
  }
  let failures = 0
  const check = (ok: boolean, line: string): void => {
    if (!ok) failures++
    say(`  ${ok ? 'OK  ' : 'FAIL'} ${line}`)
  }

  const pool = await startSimulatedPool()
  const remoteDir = await mkdtemp(join(tmpdir(), 'demo-remote-'))
  const host = await startHostDouble({ pools: [pool], remotes: [{ name: 'demo nas', url: `file://${remoteDir}` }] })
  const xo = await host.signIn()
  try {
    const remote = host.remoteIds[0] ?? ''
    const vm = pool.sim.findVm('vm1')
    const disks = pool.sim.vdisOf(vm.uuid)
    const system = disks.find(disk => disk.name_label === 'system')
    if (system === undefined) throw new Error('vm1 has no system disk')
    const diskSize = Number(system['virtual_size'])
    const call = <T>(method: string, params?: Record<string, unknown>): Promise<T> => xo.call<T>(`continuousDelta.${method}`, params)

    say('xo-server-continuous-delta demo: simulated XCP-ng pool, xo-server host double, file remote, all on 127.0.0.1')
    const jobId = await call<string>('createJob', { name: 'Demo', vms: [vm.uuid], remote, retention: RETENTION })
    say(`job "Demo" created through the API (id ${jobId}), retention ${RETENTION}, VM ${String(vm['name_label'])} with disks ${disks.map(disk => `"${String(disk.name_label)}" (${size(Number(disk['virtual_size']))})`).join(', ')}`)
    say('between runs the guest writes 3 × 64 KiB at places that change from run to run; only the 2 MiB blocks holding data move')
    say()
    say('run  status   disk      mode   transferred  merges')

    const guestHashes = new Map<string, { run: number; hash: string }>()
    for (let run = 1; run <= RUNS; run++) {
      if (run > 1) for (const offset of writesOf(run, diskSize)) await pool.sim.writeGuest(system.uuid, offset, randomBytes(64 * 1024))
      const hash = await pool.sim.hashVdi(system.uuid)
      const result = await call<RunView>('runJob', { id: jobId })
      const [vmRun] = result.vms
      if (vmRun?.restorePoint !== undefined) guestHashes.set(vmRun.restorePoint, { run, hash })
      if (vmRun?.status !== 'success') failures++
      for (const disk of vmRun?.disks ?? []) {
        say(`${String(run).padEnd(4)} ${result.status.padEnd(8)} ${disk.name.padEnd(9)} ${disk.mode.padEnd(6)} ${size(disk.size).padStart(11)}  ${vmRun?.merges?.length ?? 0}`)
      }
      if (vmRun?.error !== undefined) say(`     error: ${vmRun.error}`)
      if (run === 1) for (const excluded of vmRun?.excluded ?? []) say(`     not backed up: "${excluded.name}" (${excluded.reason})`)
    }

    const points = await call<PointView[]>('listRestorePoints', { remote, vm: vm.uuid })
    say()
    say(`restore points on the remote, oldest first (retention ${RETENTION}):`)
    for (const point of points) {
      say(`  ${new Date(point.timestamp).toISOString()}  ${point.disks.map(disk => `${disk.name} (${disk.differencing ? 'delta' : 'full'})`).join(', ')}`)
    }

    say()
    say('checks:')
    check(points.length === RETENTION, `${points.length} restore points kept`)
    const sr = pool.sim.defaultSr()
    for (const [label, point] of [['oldest', points[0]], ['newest', points[points.length - 1]]] as const) {
      if (point === undefined) {
        check(false, `no ${label} restore point`)
        continue
      }
      const expected = guestHashes.get(point.id)
      const restoredVm = await call<string>('restore', { remote, restorePoint: point.id, sr })
      const restoredDisk = pool.sim.vdisOf(restoredVm).find(disk => disk.name_label === 'system')
      const actual = restoredDisk === undefined ? 'no disk' : await pool.sim.hashVdi(restoredDisk.uuid)
      check(
        expected !== undefined && actual === expected.hash,
        `${label} restore point (run ${expected?.run ?? '?'}) restored as VM ${restoredVm}: sha256 ${actual.slice(0, 16)}… ${actual === expected?.hash ? '=' : '≠'} guest disk at that run`
      )
    }
    const report = await call<{ ok: boolean; problems: readonly unknown[] }>('verify', { remote })
    check(report.ok, `verify: ${report.ok ? 'no problems' : JSON.stringify(report.problems)}`)
    say()
    say(failures === 0 ? 'RESULT: all checks passed' : `RESULT: ${failures} check(s) failed`)
  } finally {
    await xo.close()
    await host.close()
    await pool.close()
    await rm(remoteDir, { recursive: true, force: true })
  }
  await writeFile(join(REPO_ROOT, 'docs', 'demo-report.txt'), `${lines.join('\n')}\n`)
  return failures === 0 ? 0 : 1
}

main().then(
  code => {
    process.exitCode = code
  },
  error => {
    process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exitCode = 1
  }
)
