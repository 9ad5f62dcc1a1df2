/**
 * A small seeded pseudo-random generator (mulberry32): every benchmark input is derived from a
 * seed so that two runs measure the same bytes at the same places.
 */
export class Prng {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** next unsigned 32-bit integer */
  nextUint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }

  /** integer in [0, max) */
  below(max: number): number {
    return Math.floor((this.nextUint32() / 0x1_0000_0000) * max)
  }

  /** `count` distinct integers of [0, max) not in `exclude`, sorted ascending */
  distinct(count: number, max: number, exclude: ReadonlySet<number> = new Set()): number[] {
    if (count > max - exclude.size) throw new RangeError(`cannot pick ${count} distinct values below ${max}`)
    const picked = new Set<number>()
    while (picked.size < count) {
      const value = this.below(max)
      if (!exclude.has(value)) picked.add(value)
    }
    return [...picked].sort((a, b) => a - b)
  }

  /** `count` distinct elements of `values`, sorted ascending */
  sample(values: readonly number[], count: number): number[] {
    return this.distinct(count, values.length).map(i => values[i]!).sort((a, b) => a - b)
  }

  fill(buffer: Buffer): Buffer {
    let i = 0
    for (; i + 4 <= buffer.length; i += 4) buffer.writeUInt32LE(this.nextUint32(), i)
    for (; i < buffer.length; i++) buffer[i] = this.nextUint32() & 0xff
    return buffer
  }
}
