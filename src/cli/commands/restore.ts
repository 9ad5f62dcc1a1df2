/** `restore`: a new VM from a restore point, on a pool reached directly (no xo-server). */
import { readFile } from 'node:fs/promises'

import { assertSafeId, BACKUP_ROOT, isMetadataName } from '../../repository/layout.js'
import { listRestorePoints } from '../../repository/restore-points.js'
import type { RemoteHandler } from '../../repository/remote-handler.js'
import { restoreVm } from '../../restore/restore-vm.js'
import { NULL_REF } from '../../xapi/client.js'
import type { XapiClient } from '../../xapi/client.js'
import { connectPool, openRemote } from '../connect.js'
import { printJson, printLine } from '../io.js'
import type { CliIo } from '../io.js'
import { progressReporter } from '../progress.js'
import { EXIT_OK, PASSWORD_ENV, UsageError } from '../usage.js'

export interface RestoreOptions {
  readonly remote: string
  readonly restorePoint: string
  readonly vm?: string
  readonly pool: string
  readonly user: string
  readonly passwordFile?: string
  readonly sr?: string
  readonly json: boolean
  /** restore even when blocks are damaged, listing them */
  readonly allowDamaged?: boolean
  /** new MAC addresses for the VM's interfaces */
  readonly newMacAddresses?: boolean
}

async function readPassword(options: RestoreOptions, io: CliIo): Promise<string> {
  if (options.passwordFile !== undefined) {
    const [line = ''] = (await readFile(options.passwordFile, 'utf8')).split(/\r?\n/)
    if (line === '') throw new UsageError(`the password file ${options.passwordFile} is empty`)
    return line
  }
  const fromEnv = io.env[PASSWORD_ENV]
  if (fromEnv === undefined || fromEnv === '') {
    throw new UsageError(`the pool password is needed: give --password-file <path> or set ${PASSWORD_ENV}`)
  }
  return fromEnv
}

async function resolveRestorePoint(handler: RemoteHandler, options: RestoreOptions): Promise<string> {
  if (options.restorePoint !== 'latest') {
    const [root, vm, name, ...rest] = options.restorePoint.split('/')
    if (root !== BACKUP_ROOT || vm === undefined || name === undefined || rest.length !== 0 || !isMetadataName(name)) {
      throw new UsageError(`--restore-point must be an id as \`list\` prints it (${BACKUP_ROOT}/<vm>/<timestamp>.json) or latest`)
    }
    assertSafeId('vm', vm)
    return options.restorePoint
  }
  if (options.vm === undefined) throw new UsageError('--restore-point latest needs --vm <uuid>')
  const points = await listRestorePoints(handler, { vm: options.vm })
  const latest = points[points.length - 1]
  if (latest === undefined) throw new Error(`no restore points of VM ${options.vm} on this remote`)
  return latest.id
}

function defaultSr(xapi: XapiClient): string {
  const ref = xapi.pool['default_SR']
  if (typeof ref !== 'string' || ref === NULL_REF) throw new UsageError('the pool has no default SR: give --sr <uuid>')
  return xapi.getObjectByRef(ref).uuid
}

export async function restoreCommand(options: RestoreOptions, io: CliIo): Promise<number> {
  const password = await readPassword(options, io)
  io.masker.add(password)
  const remote = await openRemote(options.remote)
  try {
    const restorePoint = await resolveRestorePoint(remote.handler, options)
    const xapi = await connectPool({ url: options.pool, user: options.user, password })
    try {
      const sr = options.sr ?? defaultSr(xapi)
      const reporter = progressReporter(io.stderr, !options.json)
      const result = await restoreVm({
        handler: remote.handler,
        restorePoint,
        xapi,
        sr,
        reporter,
        signal: io.signal,
        allowDamaged: options.allowDamaged === true,
        newMacAddresses: options.newMacAddresses === true,
      })
      if (options.json) {
        printJson(io, { vm: result.vm, restorePoint, sr, missingDisks: result.missingDisks, damaged: result.damaged, notRestored: result.notRestored })
      } else {
        printLine(io, `restored ${restorePoint} as VM ${result.vm} (disks on SR ${sr})${result.damaged.length > 0 ? ', WITH DAMAGED DATA (--allow-damaged)' : ''}`)
        for (const disk of result.missingDisks) printLine(io, `  not restored: disk ${disk.name} (${disk.reason})`)
        for (const what of result.notRestored) printLine(io, `  not restored: the VM's ${what} (this pool cannot hold it; see the warning above)`)
        for (const damage of result.damaged) printLine(io, `  damaged: ${damage.block === undefined ? '' : `block ${damage.block} of `}${damage.vhd}: ${damage.reason}`)
      }
      return EXIT_OK
    } finally {
      await xapi.disconnect()
    }
  } finally {
    await remote.close()
  }
}
