/** Damage injected into a VHD on a local remote, as a disk, a network or a person might. */
import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { RemoteHandler } from '../../src/repository/remote-handler.js'
import { openVhd, resolveVhdAlias } from '../../src/repository/vhd-lib.js'
import { BLOCK } from './exports.js'

/** Flips the four bytes of `file` at `offset` (each xored with 0xa5). */
async function flipFourBytesAt(file: string, offset: number): Promise<void> {
  const handle = await open(file, 'r+')
  try {
    const bytes = Buffer.alloc(4)
    await handle.read(bytes, 0, 4, offset)
    for (let i = 0; i < 4; i++) bytes[i] = bytes[i]! ^ 0xa5
    await handle.write(bytes, 0, 4, offset)
  } finally {
    await handle.close()
  }
}

/**
 * Flips four bytes in the middle of the data of the first stored block of a VHD (file or
 * directory) of the local remote rooted at `root`; returns nothing, the block id is the lowest one.
 */
export async function flipFourBytesInFirstBlock(root: string, handler: RemoteHandler, vhd: string): Promise<void> {
  let file: string
  let offset: number
  if (vhd.endsWith('.alias.vhd')) {
    const data = await resolveVhdAlias(handler, vhd)
    const group = join(root, data, 'blocks', '0')
    file = join(group, (await readdir(group)).sort((a, b) => Number(a) - Number(b))[0]!)
    offset = 512 + BLOCK / 2
  } else {
    // footer, header, a one-sector BAT (small disks), at most one sector of parent locator, then the first block's bitmap
    file = join(root, vhd)
    offset = 512 + 1024 + 512 + 512 + 512 + BLOCK / 2
  }
  await flipFourBytesAt(file, offset)
}

/** Flips four bytes in the middle of the data of block `id` of a VHD (file or directory) of the local remote rooted at `root`. */
export async function flipFourBytesInBlock(root: string, handler: RemoteHandler, vhd: string, id: number): Promise<void> {
  let file: string
  let offset: number
  if (vhd.endsWith('.alias.vhd')) {
    file = join(root, await resolveVhdAlias(handler, vhd), 'blocks', String(Math.floor(id / 1000)), String(id % 1000))
    offset = 512 + BLOCK / 2
  } else {
    const disposable = await openVhd(handler, vhd, { flags: 'r' })
    try {
      await disposable.value.readBlockAllocationTable()
      const sector = (disposable.value as unknown as { _getBatEntry(id: number): number })._getBatEntry(id)
      file = join(root, vhd)
      offset = sector * 512 + 512 + BLOCK / 2
    } finally {
      await disposable.dispose()
    }
  }
  await flipFourBytesAt(file, offset)
}
