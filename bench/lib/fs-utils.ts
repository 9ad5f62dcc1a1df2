/** File-system helpers: durable copies of inputs, flushing outputs, and per-process I/O counters. */
import { copyFile, link, mkdir, open, readdir, readFile, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'

/** fsync a file or a folder (a folder's fsync makes the renames and unlinks in it durable) */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** fsync every file and folder under `root`, `root` included */
export async function fsyncTree(root: string): Promise<void> {
  const info = await stat(root)
  if (info.isDirectory()) {
    for (const entry of await readdir(root)) await fsyncTree(join(root, entry))
  }
  await fsyncPath(root)
}

/**
 * Copies `src` (a file or a folder) to `dst` and flushes the copy, so that a measurement that
 * follows pays only for its own writes. With `linkBlocks`, VHD directory block files (under a
 * `blocks/` folder) are hard links: a merge may rename or unlink them, never rewrite them.
 */
export async function durableCopy(src: string, dst: string, opts: { linkBlocks?: boolean } = {}): Promise<void> {
  await mkdir(dirname(dst), { recursive: true })
  await copyEntry(src, dst, opts.linkBlocks === true, false)
  await fsyncTree(dst)
  await fsyncPath(dirname(dst))
}

async function copyEntry(src: string, dst: string, linkBlocks: boolean, inBlocks: boolean): Promise<void> {
  const info = await stat(src)
  if (info.isDirectory()) {
    await mkdir(dst)
    const isBlocks = inBlocks || src.endsWith('/blocks')
    for (const entry of await readdir(src)) await copyEntry(join(src, entry), join(dst, entry), linkBlocks, isBlocks)
  } else if (linkBlocks && inBlocks) {
    await link(src, dst)
  } else {
    await copyFile(src, dst)
  }
}

export interface ProcessIo {
  /** bytes passed to read-like system calls */
  readonly rchar: number
  /** bytes passed to write-like system calls */
  readonly wchar: number
}

/** this process's I/O counters (Linux `/proc/self/io`), zeros where unavailable */
export async function processIo(): Promise<ProcessIo> {
  try {
    const text = await readFile('/proc/self/io', 'utf8')
    const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
    return { rchar: field('rchar'), wchar: field('wchar') }
  } catch {
    return { rchar: 0, wchar: 0 }
  }
}

/** peak resident set size of this process so far, in MiB */
export function peakRssMiB(): number {
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10
}

/**
 * Reads every file under `paths` (files or folders) once, to nowhere: run right before a
 * measurement that reads them, so that it finds them in the page cache whatever ran before it
 * (another measurement's writes, other work on the machine evicting pages).
 */
export async function warmPageCache(paths: readonly string[]): Promise<void> {
  const buffer = Buffer.allocUnsafe(1024 * 1024)
  const warm = async (path: string): Promise<void> => {
    const info = await stat(path)
    if (info.isDirectory()) {
      for (const entry of await readdir(path)) await warm(join(path, entry))
      return
    }
    const file = await open(path, 'r')
    try {
      while ((await file.read(buffer, 0, buffer.length, null)).bytesRead > 0);
    } finally {
      await file.close()
    }
  }
  for (const path of paths) await warm(path)
}
