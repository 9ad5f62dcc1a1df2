/**
 * A plain multipart upload of a stream to S3, with the client @xen-orchestra/fs uses underneath
 * (`@aws-sdk/client-s3`, `@aws-sdk/lib-storage`'s `Upload`, 5 MiB parts as its S3 handler
 * cuts them), nothing else: the least an S3 upload of the same bytes costs.
 */
import { createRequire } from 'node:module'
import type { Readable } from 'node:stream'

export interface S3Target {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string
  readonly bucket: string
  readonly key: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
}

interface S3Module {
  S3Client: new (config: Record<string, unknown>) => { destroy(): void }
}
interface StorageModule {
  Upload: new (opts: { client: unknown; params: { Bucket: string; Key: string; Body: Readable }; partSize: number; leavePartsOnError: boolean }) => {
    done(): Promise<unknown>
  }
}

const require = createRequire(import.meta.url)

export async function multipartUpload(target: S3Target, body: Readable): Promise<void> {
  const { S3Client } = require('@aws-sdk/client-s3') as S3Module
  const { Upload } = require('@aws-sdk/lib-storage') as StorageModule
  const client = new S3Client({
    endpoint: target.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: target.accessKeyId, secretAccessKey: target.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  try {
    await new Upload({ client, params: { Bucket: target.bucket, Key: target.key, Body: body }, partSize: 5 * 1024 * 1024, leavePartsOnError: false }).done()
  } finally {
    client.destroy()
  }
}
