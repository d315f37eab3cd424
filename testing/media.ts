// Photo bytes for uploads and reading objects back, for the tests and the fault suite.
import { randomBytes } from 'node:crypto'
import type { Client } from 'minio'

/** Bytes that sniff as JPEG (SOI + APP0 marker) followed by random data. */
export function fakeJpeg(size: number): Buffer {
  const head = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00])
  return Buffer.concat([head, randomBytes(Math.max(0, size - head.length))])
}

export async function readObject(s3: Client, bucket: string, key: string): Promise<Buffer> {
  const stream = await s3.getObject(bucket, key)
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}
