/**
 * npm run bench [-- --quick] [--rounds N] [--huge-rounds N] [--job-vms N] [--seed N] [--only case,case] [--dir PATH] [--out FILE] [--cpu-prof DIR]
 *
 * Runs every benchmark case once, prints a table and writes the results as JSON (by default
 * bench/results.json for a complete full run; a quick or partial run writes only with --out).
 */
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { formatTable } from './lib/report.js'
import { CASE_NAMES, type CaseName, FULL_CONFIG, QUICK_CONFIG, runBenchmark } from './run.js'

/** the repository root, from build/bench/main.js */
const REPO_ROOT = new URL('../../', import.meta.url)

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    'huge-rounds': { type: 'string' },
    'job-vms': { type: 'string' },
    seed: { type: 'string' },
    only: { type: 'string' },
    dir: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})

if (values.help) {
  process.stdout.write(`usage: npm run bench -- [--quick] [--rounds N] [--huge-rounds N] [--job-vms N] [--seed N] [--only ${CASE_NAMES.join(',')}] [--dir PATH] [--out FILE] [--cpu-prof DIR]\n`)
  process.exit(0)
}

function positiveInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a positive integer, not ${value}`)
  return n
}

const base = values.quick ? QUICK_CONFIG : FULL_CONFIG
const only = values.only?.split(',').map(name => name.trim())
for (const name of only ?? []) if (!(CASE_NAMES as readonly string[]).includes(name)) throw new Error(`unknown case ${name}`)
const config = {
  ...base,
  rounds: positiveInteger('rounds', values.rounds, base.rounds),
  hugeRounds: positiveInteger('huge-rounds', values['huge-rounds'], base.hugeRounds),
  seed: positiveInteger('seed', values.seed, base.seed),
  jobManyVms: { ...base.jobManyVms, vms: positiveInteger('job-vms', values['job-vms'], base.jobManyVms.vms) },
  cases: (only as CaseName[] | undefined) ?? base.cases,
}
const workRoot = values.dir ?? fileURLToPath(new URL('bench/data/', REPO_ROOT))
const started = Date.now()
const log = (message: string): void => void process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`)

const results = await runBenchmark(config, { workRoot, cpuProfileDir: values['cpu-prof'], log })
process.stdout.write(`\n${formatTable(results)}`)
const out = values.out ?? (config.quick || only !== undefined ? undefined : fileURLToPath(new URL('bench/results.json', REPO_ROOT)))
if (out !== undefined) {
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`)
  process.stdout.write(`results written to ${out}\n`)
}
