// Serving stored photos through the panel. The type sent is sniffed again from the object's
// first bytes (never the client's Content-Type): the raster types browsers display are served
// inline; everything else, including HTML, SVG and anything unknown, as
// application/octet-stream with Content-Disposition: attachment. With nosniff and the panel's
// CSP, a stored object can never run as a page or script in the panel's origin.
import { Readable } from 'node:stream'
import { create as createContentDisposition } from 'content-disposition'
import type { Client as S3Client } from 'minio'
import { SNIFF_BYTES, sniffType } from '../../shared/sniff.ts'

export const INLINE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

const MAX_NAME_CHARS = 200
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * RFC 6266 Content-Disposition, built by the `content-disposition` package: the exact name
 * (cut at 200 code points, never inside a surrogate pair; a lone surrogate becomes U+FFFD) in
 * `filename*` (RFC 8187, UTF-8, percent-encoded) and a plain-ASCII `filename` fallback (quotes,
 * backslashes, `%`, `;`, control characters, path separators and non-ASCII replaced by `_`).
 * A name that is already plain ASCII is sent as `filename` alone. Never throws: whatever the
 * stored name, the answer is a valid header (at worst `<kind>; filename="file"`).
 */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  try {
    const wellFormed = String(name)
      .replace(LONE_SURROGATE, '\ufffd')
      .replace(/[\u0000-\u001f\u007f/\\]/g, '_')
    const cleaned = Array.from(wellFormed).slice(0, MAX_NAME_CHARS).join('') || 'file'
    const ascii = cleaned.replace(/[^\x20-\x7e]|["%;\\]/g, '_')
    return createContentDisposition(cleaned, { type: kind, fallback: ascii })
  } catch {
    return `${kind}; filename="file"`
  }
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
  // From here on the object's stream is open: whatever fails before the body is handed over
  // must close it, or the S3 connection stays open.
  try {
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
    const out = Readable.from(body(), { objectMode: false })
    // A body destroyed before its first read never starts the generator, so its `finally` never
    // runs: close the object's stream whenever the body closes, however early.
    out.once('close', () => stream.destroy())
    return {
      type: inline ? sniffed : 'application/octet-stream',
      disposition: contentDisposition(inline ? 'inline' : 'attachment', filename),
      length: typeof stat.size === 'number' ? stat.size : null,
      body: out,
    }
  } catch (err) {
    stream.destroy()
    throw err
  }
}
