/** Reading a remote's restore point metadata plainly: readdir, readFile, JSON.parse, nothing else. */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'

export async function plainListing(root: string): Promise<unknown[]> {
  const backups = join(root, 'xo-vm-backups')
  const points: unknown[] = []
  for (const vm of (await readdir(backups)).sort()) {
    const dir = join(backups, vm)
    for (const name of (await readdir(dir)).filter(name => name.endsWith('.json')).sort()) {
      points.push(JSON.parse(await readFile(join(dir, name), 'utf8')))
    }
  }
  return points
}
