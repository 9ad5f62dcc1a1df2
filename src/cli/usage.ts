/**
 * Command-line usage: the help text, the error for a bad command line (exit code 2) and the
 * exit codes.
 */
export const EXIT_OK = 0
/** the command failed, or found problems */
export const EXIT_FAILURE = 1
/** the command line is wrong */
export const EXIT_USAGE = 2

export class UsageError extends Error {
  override readonly name = 'UsageError'
}

export const PASSWORD_ENV = 'XO_CONTINUOUS_DELTA_PASSWORD'

export const HELP = `xo-continuous-delta: disaster recovery for continuous delta backups, without xo-server

Usage:
  xo-continuous-delta list    --remote <url> [--vm <uuid>] [--json]
  xo-continuous-delta verify  --remote <url> [--vm <uuid>] [--sample <N>%] [--seed <n>] [--json]
  xo-continuous-delta restore --remote <url> --restore-point <id|latest> [--vm <uuid>]
                              --pool <url> [--user <name>] [--password-file <path>] [--sr <uuid>]
                              [--new-mac-addresses] [--allow-damaged] [--json]
  xo-continuous-delta delete  --remote <url> --restore-point <id> [--json]
  xo-continuous-delta --help

Commands:
  list      the restore points on the remote, oldest first
  verify    checks every chain, VHD, block and metadata file on the remote (exit code 1 if it finds problems)
  restore   creates a new VM from a restore point on a pool (its disks on --sr, or the pool's default SR)
  delete    deletes one restore point; the others stay restorable (what it alone held is merged into
            the next one; nothing is deleted when that merge would meet damage)

Options:
  --remote <url>          the backup remote: file:///abs/dir, nfs://host/export/dir, smb://..., s3://...
  --vm <uuid>             only this VM (with --restore-point latest: the VM whose newest point to restore)
  --restore-point <id>    a restore point id as listed by \`list\`, or \`latest\` (needs --vm)
  --pool <url>            the pool master, e.g. https://192.0.2.10
  --user <name>           the pool user (default: root)
  --password-file <path>  a file whose first line is the pool password; else the ${PASSWORD_ENV}
                          environment variable. The password is never printed.
  --sr <uuid>             the SR that receives the disks
  --sample <N>%           verify: check a random N % of each VHD's blocks instead of all (the seed is printed)
  --seed <n>              verify --sample: the draw to repeat (an integer; default: a random one)
  --new-mac-addresses     restore: give the VM's interfaces new MAC addresses (a copy beside the original)
  --allow-damaged         restore: go on when blocks do not match their recorded checksums, and list them
                          (without it such a restore fails, naming the VHD, the block and the restore point)
  --json                  machine-readable output on stdout
  -h, --help              this help

Exit codes: 0 success, 1 failure or problems found, 2 wrong command line.
`
