// Serving stored photos through the panel. The type sent is sniffed again from the object's
// first bytes (never the client's Content-Type): the raster types browsers display are served
// inline; everything else, including HTML, SVG and anything unknown, as
// application/octet-stream with Content-Disposition: attachment. With nosniff and the panel's
// CSP, a stored object can never run as a page or script in the panel's origin.
import { Readable } from 'node:stream'
import type { Client as S3Client } from 'minio'
import { SNIFF_BYTES, sniffType } from '../../shared/sniff.ts'

export const INLINE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

/**
 * RFC 6266 Content-Disposition: a plain-ASCII `filename` fallback (quotes, backslashes, control
 * characters, path separators and non-ASCII replaced by `_`) and the exact name, percent-encoded
 * as UTF-8, in `filename*` (RFC 8187).
 */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const cleaned = name.replace(/[\u0000-\u001f\u007f/\\]/g, '_').slice(0, 200) || 'file'
  const ascii = cleaned.replace(/[^\x20-\x7e]|["%;]/g, '_')
  const star = encodeURIComponent(cleaned).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${star}`
}

export interface MediaResponse {
  type: string
  disposition: string
  length: number | null
  body: Readable
}

/** Opens the object and peeks at its head to decide the type; the body stream includes the peeked bytes. */
export async function openMedia(s3: S3Client, bucket: string, key: string, filename: string): Promise<MediaResponse> {
  const stat = await s3.statObject(bucket, key)
  const stream = (await s3.getObject(bucket, key)) as Readable
  const it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  const head: Buffer[] = []
  let headLen = 0
  let done = false
  while (headLen < SNIFF_BYTES) {
    const r = await it.next()
    if (r.done) {
      done = true
      break
    }
    head.push(r.value)
    headLen += r.value.length
  }
  const sniffed = sniffType(Buffer.concat(head))
  const inline = INLINE_TYPES.has(sniffed)
  async function* body() {
    try {
      yield* head
      if (done) return
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
    } finally {
      stream.destroy()
    }
  }
  return {
    type: inline ? sniffed : 'application/octet-stream',
    disposition: contentDisposition(inline ? 'inline' : 'attachment', filename),
    length: typeof stat.size === 'number' ? stat.size : null,
    body: Readable.from(body(), { objectMode: false }),
  }
}
