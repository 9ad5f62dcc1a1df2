/**
 * Finds the allocated parts of a sparse file, so that snapshots and exports cost what was written,
 * not the virtual size. Node exposes no lseek(SEEK_DATA/SEEK_HOLE), so a short python3 program
 * walks the extents. Where python3 or SEEK_DATA is unavailable, the file is scanned for non-zero
 * blocks instead: correct, but its cost grows with the file size.
 */
import { execFile, execFileSync } from 'node:child_process'
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs'
import { open } from 'node:fs/promises'

/** [start, end) byte ranges holding data, ascending and non-overlapping. */
export type Extent = readonly [start: number, end: number]

const WALK_EXTENTS = `
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
offset = 0
out = []
while offset < size:
    try:
        start = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError:
        break
    end = os.lseek(fd, start, os.SEEK_HOLE)
    out.append("%d %d" % (start, end))
    offset = end
sys.stdout.write("\\n".join(out))
`

let seekDataWorks: boolean | undefined

/** A system python3 starts in milliseconds; a version-manager shim on PATH can take half a second. */
const PYTHON = ['/usr/bin/python3', '/usr/local/bin/python3'].find(path => existsSync(path)) ?? 'python3'

function parseExtents(stdout: string): Extent[] {
  const extents: Extent[] = []
  for (const line of stdout.split('\n')) {
    if (line === '') continue
    const [start, end] = line.split(' ').map(Number)
    extents.push([start!, end!])
  }
  return extents
}

/** The extents as lseek(SEEK_DATA/SEEK_HOLE) reports them (needs python3). */
export function walkWithSeekData(path: string): Promise<Extent[]> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ['-c', WALK_EXTENTS, path], { maxBuffer: 256 * 1024 * 1024 }, (error, stdout) => {
      if (error !== null) return reject(error)
      resolve(parseExtents(stdout))
    })
  })
}

const SCAN_CHUNK = 1024 * 1024

/** The fallback: reads the whole file and reports the non-zero 1 MiB chunks. */
export async function scanForData(path: string): Promise<Extent[]> {
  const file = await open(path, 'r')
  try {
    const { size } = await file.stat()
    const buffer = Buffer.alloc(SCAN_CHUNK)
    const zeros = Buffer.alloc(SCAN_CHUNK)
    const extents: [number, number][] = []
    for (let offset = 0; offset < size; offset += SCAN_CHUNK) {
      const { bytesRead } = await file.read(buffer, 0, SCAN_CHUNK, offset)
      const chunk = buffer.subarray(0, bytesRead)
      if (chunk.equals(zeros.subarray(0, bytesRead))) continue
      const last = extents.at(-1)
      if (last !== undefined && last[1] === offset) last[1] = offset + bytesRead
      else extents.push([offset, offset + bytesRead])
    }
    return extents
  } finally {
    await file.close()
  }
}

/** The data extents of a file (see the module comment for how they are found). */
export async function dataExtents(path: string): Promise<Extent[]> {
  if (seekDataWorks !== false) {
    try {
      const extents = await walkWithSeekData(path)
      seekDataWorks = true
      return extents
    } catch (error) {
      // only a missing python3 selects the fallback; any other failure is real
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      seekDataWorks = false
    }
  }
  return scanForData(path)
}

/** `dataExtents`, blocking: for the rare steps that must finish before returning (a disk destroyed) */
export function dataExtentsSync(path: string): Extent[] {
  if (seekDataWorks !== false) {
    try {
      const extents = parseExtents(execFileSync(PYTHON, ['-c', WALK_EXTENTS, path], { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }))
      seekDataWorks = true
      return extents
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
      seekDataWorks = false
    }
  }
  const fd = openSync(path, 'r')
  try {
    const { size } = fstatSync(fd)
    const buffer = Buffer.alloc(SCAN_CHUNK)
    const zeros = Buffer.alloc(SCAN_CHUNK)
    const extents: [number, number][] = []
    for (let offset = 0; offset < size; offset += SCAN_CHUNK) {
      const bytesRead = readSync(fd, buffer, 0, SCAN_CHUNK, offset)
      if (buffer.subarray(0, bytesRead).equals(zeros.subarray(0, bytesRead))) continue
      const last = extents.at(-1)
      if (last !== undefined && last[1] === offset) last[1] = offset + bytesRead
      else extents.push([offset, offset + bytesRead])
    }
    return extents
  } finally {
    closeSync(fd)
  }
}

/** Indexes of the `blockSize` blocks that `extents` touch, ascending. */
export function blocksOf(extents: readonly Extent[], blockSize: number): number[] {
  const blocks: number[] = []
  for (const [start, end] of extents) {
    const first = Math.floor(start / blockSize)
    const last = Math.floor((end - 1) / blockSize)
    for (let block = Math.max(first, (blocks.at(-1) ?? -1) + 1); block <= last; ++block) blocks.push(block)
  }
  return blocks
}
