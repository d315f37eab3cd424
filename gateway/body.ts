// Request-body helpers shared by the JSON routes and the media route.
import type { FastifyRequest } from 'fastify'
import { createHash, type Hash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { finished, Transform, type TransformCallback } from 'node:stream'
import { gunzipSync } from 'node:zlib'
import { HttpError } from './errors.ts'

export const tooLarge = (limit: number) => new HttpError(413, 'too_large', `body is larger than ${limit} bytes`)

/** Counts and hashes bytes as they pass, and fails the stream as soon as the limit is crossed. */
export class HashingLimiter extends Transform {
  private readonly hash: Hash = createHash('sha256')
  private digest: Buffer | null = null
  size = 0
  constructor(readonly limit: number) {
    super()
  }
  /** The SHA-256 of every byte that passed; call it once the stream has ended (a hash can be read only once, so it is kept). */
  sha256(): Buffer {
    return (this.digest ??= this.hash.digest())
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    this.size += chunk.length
    if (this.size > this.limit) return cb(tooLarge(this.limit))
    this.hash.update(chunk)
    cb(null, chunk)
  }
}

/**
 * Streams the request body into `dest` without ever destroying the request. stream.pipeline
 * would destroy it when `dest` fails (over the limit, storage refused), and destroying a request
 * whose body has not ended resets the connection: the device never saw its 413 or 503. Here the
 * request is only unpiped, so the answer is sent and the rest of the body drained (drain.ts).
 * The other way round, a body that ends early (the device went away) fails `dest` at once.
 */
export function pipeBody<T extends NodeJS.WritableStream & { destroy(err?: Error): unknown }>(raw: IncomingMessage, dest: T): T {
  // finished() also reports a request that was already gone when this is called (its connection
  // died during the claim). Not `complete`: a body fully received whose connection died before it
  // was all read (a bad pipelined request after it, a timeout) never ends either, and fails too.
  finished(raw, { writable: false }, (err) => {
    if (err || !raw.readableEnded) dest.destroy(Object.assign(new Error('the request body ended early'), { code: 'ECONNRESET' }))
  })
  raw.pipe(dest)
  return dest
}

/**
 * Undoes a Content-Encoding. gzip is inflated with a hard output cap (a small bomb must not
 * become gigabytes); any other coding is refused clearly rather than stored as garbage.
 */
export function decodeBody(body: Buffer, encoding: string | undefined, limit: number): Buffer {
  const coding = (encoding ?? 'identity').trim().toLowerCase()
  if (coding === 'identity' || coding === '') return body
  if (coding === 'gzip' || coding === 'x-gzip') {
    try {
      return gunzipSync(body, { maxOutputLength: limit })
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(limit)
      throw new HttpError(400, 'bad_encoding', 'body is not valid gzip')
    }
  }
  throw new HttpError(415, 'unsupported_encoding', `Content-Encoding ${coding} is not supported; send identity or gzip`)
}

/**
 * Takes the Content-Type header off an ingest request (call it in onRequest, before the body is
 * parsed) and returns it. Fastify answers 415 to a header it cannot parse ("garbage", ";;;")
 * before any content-type parser runs, and a device retries every answer but 200/201/409 for
 * ever. The ingest routes read the body as bytes whatever its declared type, so without the
 * header Fastify hands the body to the routes' catch-all parser; the media route keeps the
 * declared value as metadata.
 */
export function takeContentType(request: FastifyRequest): string | undefined {
  const declared = request.headers['content-type']
  delete request.raw.headers['content-type'] // request.headers reads these
  return declared
}
