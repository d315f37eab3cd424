// The aws-chunked body of an S3 PUT with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER):
// the bytes in chunks, each `<hex size>\r\n<bytes>\r\n`, then `0\r\n`, the trailer line and
// `\r\n\r\n`. It lets the server check a checksum that is only known once the last byte has
// passed: the sha256 the gateway computes while it streams the photo. S3 needs the encoded
// Content-Length up front, so every chunk but the last is CHUNK bytes (servers refuse chunks
// under 8 KiB but the last): the length then follows from the body's size alone.
import { Transform, type TransformCallback } from 'node:stream'

/** 64 KiB: MinIO's decoder reads chunks into a 64 KiB buffer, and a socket read is at most that. */
export const CHUNK = 64 * 1024

const CRLF = Buffer.from('\r\n')
const header = (n: number) => Buffer.from(`${n.toString(16)}\r\n`)
const FULL_HEADER = header(CHUNK)

/** The trailer's header name for a SHA-256 (the value is the digest in base64, always 44 characters). */
export const SHA256_TRAILER = 'x-amz-checksum-sha256'
const trailerLine = (base64: string) => `0\r\n${SHA256_TRAILER}:${base64}\r\n\r\n`

/** The encoded length of a body of `size` bytes with a SHA-256 trailer. */
export function awsChunkedLength(size: number): number {
  const full = Math.floor(size / CHUNK)
  const rest = size % CHUNK
  const chunks = full * (FULL_HEADER.length + CHUNK + 2) + (rest > 0 ? header(rest).length + rest + 2 : 0)
  return chunks + trailerLine('='.repeat(44)).length
}

/**
 * Frames exactly `size` bytes as aws-chunked, and ends with the trailer `sha256Base64()` returns
 * once the input has ended (the upstream hasher has seen every byte by then). No byte is copied:
 * a chunk's pieces are pushed as they come, between its header and its CRLF (the consumer corks
 * its socket, so one input buffer's pieces still leave in one write: s3-stream-put.ts). More or
 * fewer bytes than `size` fail the stream: the PUT's headers promised that length.
 */
export class AwsChunkedEncoder extends Transform {
  /** Bytes still to come in the chunk being written (0: the next byte starts a chunk). */
  private left = 0
  private seen = 0

  constructor(
    private readonly size: number,
    private readonly sha256Base64: () => string,
  ) {
    super()
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    if (this.seen + chunk.length > this.size) return cb(new Error(`aws-chunked: more than the ${this.size} bytes declared`))
    let at = 0
    while (at < chunk.length) {
      if (this.left === 0) {
        // Counted from what is still to come, so every chunk is CHUNK bytes but the last.
        this.left = Math.min(CHUNK, this.size - this.seen - at)
        this.push(this.left === CHUNK ? FULL_HEADER : header(this.left))
      }
      const take = Math.min(this.left, chunk.length - at)
      this.push(take === chunk.length ? chunk : chunk.subarray(at, at + take))
      at += take
      this.left -= take
      if (this.left === 0) this.push(CRLF)
    }
    this.seen += chunk.length
    cb()
  }

  override _flush(cb: TransformCallback) {
    if (this.seen !== this.size) return cb(new Error(`aws-chunked: ${this.seen} bytes of the ${this.size} declared`))
    cb(null, trailerLine(this.sha256Base64()))
  }
}
