/** What the figures were measured on. */
import { readFile } from 'node:fs/promises'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { resolve } from 'node:path'

export interface MachineInfo {
  readonly cpu_model: string
  readonly cores: number
  readonly memory_gib: number
  /** file system type of the folder the benchmark worked in, e.g. ext4 */
  readonly filesystem: string
  readonly kernel: string
  readonly node: string
}

/** the type of the mount holding `path` (longest matching mount point in /proc/mounts) */
async function filesystemOf(path: string): Promise<string> {
  try {
    const target = resolve(path)
    let best = { point: '', type: 'unknown' }
    for (const line of (await readFile('/proc/mounts', 'utf8')).split('\n')) {
      const [, point, type] = line.split(' ')
      if (point === undefined || type === undefined) continue
      const inside = target === point || target.startsWith(point.endsWith('/') ? point : `${point}/`)
      if (inside && point.length >= best.point.length) best = { point, type }
    }
    return best.type
  } catch {
    return 'unknown'
  }
}

export async function machineInfo(workDir: string): Promise<MachineInfo> {
  const list = cpus()
  return {
    cpu_model: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    filesystem: await filesystemOf(workDir),
    kernel: release(),
    node: process.version,
  }
}

/** 1, 5 and 15 minute load averages, 2 decimals */
export function loadAverages(): [number, number, number] {
  const [a, b, c] = loadavg().map(v => Math.round(v * 100) / 100) as [number, number, number]
  return [a, b, c]
}
