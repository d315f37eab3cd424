// Reading an object back from object storage (its size, sha256 and first bytes, or that it is
// gone). The media job never reads a photo the gateway uploaded; this serves the sweeper, which
// rebuilds a lost job from an upload, and jobs staged by the earlier layout, which verify theirs.
import type { Client as S3Client } from 'minio'
import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { SNIFF_BYTES } from '../shared/sniff.ts'

export interface StagedRead {
  size: number
  sha256: string
  head: Buffer
}

/** Streams an object through sha256, keeping only its first bytes (for sniffing). */
export async function readObject(s3: S3Client, bucket: string, key: string): Promise<StagedRead> {
  const stream: Readable = await s3.getObject(bucket, key)
  const hash = createHash('sha256')
  const head: Buffer[] = []
  let headLen = 0
  let size = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk)
    size += chunk.length
    if (headLen < SNIFF_BYTES) {
      const part = chunk.subarray(0, SNIFF_BYTES - headLen)
      head.push(part)
      headLen += part.length
    }
  }
  return { size, sha256: hash.digest('hex'), head: Buffer.concat(head) }
}

/** True when S3 says the object (or its bucket entry) does not exist. */
export function isMissingObject(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'NoSuchKey' || code === 'NotFound'
}
