/**
 * node build/bench/profile-summary.js <file.cpuprofile> [path filter, default "src/"]
 *
 * Summarizes a V8 CPU profile written with `npm run bench -- --cpu-prof DIR`: the heaviest
 * functions by self time (idle and garbage collection included), then the functions whose path
 * contains the filter by inclusive time.
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly children?: readonly number[]
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

const [file, filter = 'src/'] = process.argv.slice(2)
if (file === undefined) {
  process.stderr.write('usage: node build/bench/profile-summary.js <file.cpuprofile> [path filter]\n')
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
const nodes = new Map(profile.nodes.map(node => [node.id, node]))
const parents = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id)
const label = (node: ProfileNode): string =>
  `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').slice(-3).join('/')}:${node.callFrame.lineNumber + 1}`

const self = new Map<string, number>()
const inclusive = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const dt = (profile.timeDeltas[i] ?? 0) / 1000
  total += dt
  const leaf = nodes.get(id)!
  self.set(label(leaf), (self.get(label(leaf)) ?? 0) + dt)
  const seen = new Set<string>()
  for (let current: number | undefined = id; current !== undefined; current = parents.get(current)) {
    const node = nodes.get(current)!
    const key = label(node)
    if (!node.callFrame.url.includes(filter) || seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + dt)
  }
})
const top = (map: Map<string, number>, n: number): string =>
  [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([key, ms]) => `${ms.toFixed(1).padStart(9)} ms  ${key}`).join('\n')
process.stdout.write(`profile: ${total.toFixed(0)} ms sampled\n\nself time\n${top(self, 15)}\n\ninclusive time, ${filter}\n${top(inclusive, 20)}\n`)
