#!/usr/bin/env node
/**
 * xo-continuous-delta: lists, verifies, restores and deletes continuous delta backups straight from a
 * remote and a pool, for when the XO server itself is lost. See `--help`.
 */
import { parseCommandLine } from './args.js'
import type { CliIo } from './io.js'
import { SecretMasker } from './secrets.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, HELP, UsageError } from './usage.js'

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code: unknown = Reflect.get(error, 'code')
  return typeof code === 'string' && !error.message.includes(code) ? `${error.message} (${code})` : error.message
}

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const command = parseCommandLine(argv)
    if ('options' in command) io.masker.addUrl(command.options.remote)
    switch (command.name) {
      case 'help':
        io.stdout.write(HELP)
        return EXIT_OK
      // each command loads only what it needs
      case 'list':
        return await (await import('./commands/list.js')).listCommand(command.options, io)
      case 'verify':
        return await (await import('./commands/verify.js')).verifyCommand(command.options, io)
      case 'restore':
        io.masker.addUrl(command.options.pool)
        return await (await import('./commands/restore.js')).restoreCommand(command.options, io)
      case 'delete':
        return await (await import('./commands/delete.js')).deleteCommand(command.options, io)
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${io.masker.mask(error.message)}\n\nRun xo-continuous-delta --help for usage.\n`)
      return EXIT_USAGE
    }
    io.stderr.write(`error: ${io.masker.mask(errorText(error))}\n`)
    return EXIT_FAILURE
  }
}

const controller = new AbortController()
process.once('SIGINT', () => controller.abort(new Error('interrupted')))
const io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env, masker: new SecretMasker(), signal: controller.signal }
process.exitCode = await main(process.argv.slice(2), io)
// the pool client and the remote handler may keep sockets alive a moment: do not wait for
// them, only for the output to be written
await new Promise<void>(resolve => process.stdout.write('', () => resolve()))
process.exit()
