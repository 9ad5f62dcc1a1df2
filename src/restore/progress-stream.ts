/**
 * The progress of a stream being consumed: a pass-through that counts the bytes read from it
 * against the length they add up to, and tells the whole percent each time it changes.
 * The source's errors reach the consumer (through `pipeline`); destroying the source ends both.
 */
import { pipeline, Transform } from 'node:stream'
import type { Readable } from 'node:stream'

export function withProgress(source: Readable, length: number, onPercent: (percent: number) => void): Readable {
  let bytes = 0
  let last = -1
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length
      const percent = Math.min(100, Math.floor((100 * bytes) / Math.max(1, length)))
      if (percent !== last) {
        last = percent
        onPercent(percent)
      }
      callback(null, chunk)
    },
  })
  pipeline(source, meter, () => {})
  return meter
}
