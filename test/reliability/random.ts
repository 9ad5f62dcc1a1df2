/** A small seeded PRNG (mulberry32): the reliability suites are reproducible run after run. */
export class SeededRandom {
  #state: number

  constructor(seed: number) {
    this.#state = seed >>> 0
  }

  /** uniform in [0, 1) */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0
    let t = this.#state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** an integer in [min, max) */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min))
  }

  bytes(length: number): Buffer {
    const buffer = Buffer.allocUnsafe(length)
    for (let i = 0; i < length; i += 4) {
      buffer.writeUInt32LE(Math.floor(this.next() * 4294967296) >>> 0, Math.min(i, length - 4))
    }
    return buffer
  }
}
