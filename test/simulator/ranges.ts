/** Byte ranges `[start, end)`, ascending and non-overlapping: the data extents of disk files. */
import type { Extent } from './sparse-extents.js'

/** the ranges of `a` within `[from, to)` */
export function clip(a: readonly Extent[], from: number, to: number): Extent[] {
  const out: Extent[] = []
  for (const [start, end] of a) {
    const s = Math.max(start, from)
    const e = Math.min(end, to)
    if (s < e) out.push([s, e])
  }
  return out
}

/** `a` and `b` merged into one ascending list, touching ranges joined */
export function union(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  const all = [...a, ...b].sort((x, y) => x[0] - y[0])
  const out: [number, number][] = []
  for (const [start, end] of all) {
    const last = out.at(-1)
    if (last !== undefined && start <= last[1]) last[1] = Math.max(last[1], end)
    else out.push([start, end])
  }
  return out
}

/** the parts of `a` that `b` covers */
export function intersect(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  const out: Extent[] = []
  let j = 0
  for (const [start, end] of a) {
    while (j < b.length && b[j]![1] <= start) j++
    for (let k = j; k < b.length && b[k]![0] < end; k++) {
      const s = Math.max(start, b[k]![0])
      const e = Math.min(end, b[k]![1])
      if (s < e) out.push([s, e])
    }
  }
  return out
}

/** the parts of `a` that `b` does not cover */
export function subtract(a: readonly Extent[], b: readonly Extent[]): Extent[] {
  const out: Extent[] = []
  let j = 0
  for (const [start, end] of a) {
    let at = start
    while (j < b.length && b[j]![1] <= at) j++
    for (let k = j; k < b.length && b[k]![0] < end; k++) {
      if (b[k]![0] > at) out.push([at, b[k]![0]])
      at = Math.max(at, b[k]![1])
    }
    if (at < end) out.push([at, end])
  }
  return out
}

/** the byte ranges of a set of `size`-byte units, ascending */
export function rangesOfUnits(units: Iterable<number>, size: number): Extent[] {
  const sorted = [...units].sort((a, b) => a - b)
  const out: [number, number][] = []
  for (const unit of sorted) {
    const last = out.at(-1)
    if (last !== undefined && last[1] === unit * size) last[1] += size
    else out.push([unit * size, (unit + 1) * size])
  }
  return out
}
