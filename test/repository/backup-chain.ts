/** restore points written the way a run writes them: VHDs with writeVhd, then the metadata */
import { randomUUID } from 'node:crypto'
import { formatTimestamp, vhdPath } from '../../src/repository/layout.js'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { writeVhd } from '../../src/repository/write-vhd.js'
import { exportStream, type ExportSpec } from './exports.js'
import { writeTestRestorePoint, type TestDisk } from './records.js'

export interface WrittenPoint {
  readonly metadata: string
  /** source VDI uuid → VHD path */
  readonly vhds: Record<string, string>
  readonly checksums: Record<string, string>
}

/**
 * `chains[vdi][i]` is the export of disk `vdi` at restore point i (0: the full). Restore point i
 * is dated `start + i` seconds.
 */
export async function writeBackups(
  handler: RemoteHandler,
  vm: string,
  jobId: string,
  chains: Record<string, ExportSpec[]>,
  opts: { directory: boolean | ((point: number) => boolean); start?: Date; count?: number },
): Promise<WrittenPoint[]> {
  const start = opts.start ?? new Date('2026-11-26T05:50:00Z')
  const count = opts.count ?? Math.max(...Object.values(chains).map(c => c.length))
  const points: WrittenPoint[] = []
  for (let i = 0; i < count; i++) {
    const date = new Date(start.getTime() + i * 1000)
    const disks: TestDisk[] = []
    const vhds: Record<string, string> = {}
    const checksums: Record<string, string> = {}
    for (const [vdi, chain] of Object.entries(chains)) {
      const path = vhdPath(vm, jobId, vdi, formatTimestamp(date), typeof opts.directory === 'function' ? opts.directory(i) : opts.directory)
      const parent = i > 0 ? points[i - 1]!.vhds[vdi] : undefined
      const result = await writeVhd(handler, path, exportStream(chain[i]!), { uuid: randomUUID(), ...(parent === undefined ? {} : { parent }) })
      disks.push({ vdi, vhd: path, differencing: i > 0, checksum: result })
      vhds[vdi] = path
      checksums[vdi] = result.checksum
    }
    points.push({ metadata: await writeTestRestorePoint(handler, vm, jobId, date, disks), vhds, checksums })
  }
  return points
}
