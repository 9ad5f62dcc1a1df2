/**
 * Wraps a remote handler to count the bytes of VHD directory block files (paths with a
 * `/blocks/` segment) read or written through it. A merge of VHD directories should move block
 * files by renaming them, and so count zero here.
 */
import { Transform, type Readable } from 'node:stream'
import type { FileRef, RemoteHandler } from '../../src/repository/remote-handler.js'

export interface BlockIoCounts {
  /** block file bytes read, bitmaps apart */
  read: number
  written: number
  /** bytes read from the first sector of block files only (their sector bitmap) */
  bitmapRead: number
}

const BITMAP_SIZE = 512

const isBlockPath = (file: FileRef): boolean => (typeof file === 'string' ? file : file.path).includes('/blocks/')

function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      onBytes(chunk.length)
      callback(null, chunk)
    },
  })
}

export function countBlockIo(inner: RemoteHandler): { handler: RemoteHandler; counts: BlockIoCounts } {
  const counts: BlockIoCounts = { read: 0, written: 0, bitmapRead: 0 }
  const overrides: Partial<RemoteHandler> = {
    async read(file, buffer, position) {
      const result = await inner.read(file, buffer, position)
      if (isBlockPath(file)) {
        if ((position ?? 0) + result.bytesRead <= BITMAP_SIZE) counts.bitmapRead += result.bytesRead
        else counts.read += result.bytesRead
      }
      return result
    },
    async write(file, buffer, position) {
      const result = await inner.write(file, buffer, position)
      if (isBlockPath(file)) counts.written += result.bytesWritten
      return result
    },
    async readFile(file, opts) {
      const data = await inner.readFile(file, opts)
      if (isBlockPath(file)) counts.read += data.length
      return data
    },
    async writeFile(file, data, opts) {
      if (isBlockPath(file)) counts.written += Buffer.byteLength(data)
      return inner.writeFile(file, data, opts)
    },
    async outputFile(file, data, opts) {
      if (isBlockPath(file)) counts.written += Buffer.byteLength(data)
      return inner.outputFile(file, data, opts)
    },
    async createReadStream(file, opts) {
      const stream = await inner.createReadStream(file, opts)
      if (!isBlockPath(file)) return stream
      const bitmapOnly = opts?.end !== undefined && opts.end < BITMAP_SIZE
      return stream.pipe(counter(n => (bitmapOnly ? (counts.bitmapRead += n) : (counts.read += n))))
    },
    async outputStream(file, input: Readable, opts) {
      return inner.outputStream(file, isBlockPath(file) ? input.pipe(counter(n => (counts.written += n))) : input, opts)
    },
  }
  if (inner.copy !== undefined) {
    const copy = inner.copy.bind(inner)
    overrides.copy = async (from, to) => {
      if (isBlockPath(from)) {
        const size = await inner.getSize(from)
        counts.read += size
        counts.written += size
      }
      return copy(from, to)
    }
  }
  const handler = new Proxy(inner, {
    get(target, property) {
      if (typeof property === 'string' && Object.hasOwn(overrides, property)) {
        return overrides[property as keyof RemoteHandler]
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { handler, counts }
}
