// The upload of a photo: the body streamed from the device's socket to its object in S3, hashed
// (sha256, which the S3 server checks as the PUT's trailing checksum), counted and sniffed on
// the way, never held in memory.
// The object's key is unique to this upload (it ends in a random id) and is where the photo stays:
// the worker only records which upload is canonical and never reads it back. Before the upload,
// an empty marker under pending/ is written for it: the sweeper finds unsettled uploads through
// these markers, and the upload's metadata carries what it needs to finish one whose job is lost.
import type { FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, type TransformCallback } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import type { GatewayConfig } from '../config.ts'
import { objectKeys } from '../../shared/keys.ts'
import { S3PutError, streamPut } from '../../shared/s3-stream-put.ts'
import { SNIFF_BYTES, sniffType } from '../../shared/sniff.ts'
import { HashingLimiter, pipeBody } from '../body.ts'
import { parseContentDisposition } from '../content-disposition.ts'
import { HttpError, isStorageUnavailable, unavailable } from '../errors.ts'

/**
 * Free text in S3 metadata must be ASCII: URI-encode it, cut at a character boundary so that it
 * still decodes (the sweeper reads it back). S3, MinIO and the Versity gateway refuse more than
 * 2 KB of user metadata in all (400 MetadataTooLarge, which reached the device as a 500): the ids
 * and the date take at most ~450 bytes with their names, so the two free-text values get 700
 * and 300. The job itself carries the full filename and Content-Type.
 */
export function metaText(s: string | null, max: number): string {
  if (s === null) return ''
  const whole = encodeURIComponent(s)
  if (whole.length <= max) return whole
  const chars = [...s] // whole code points, so no escape sequence is ever cut in two
  let lo = 0
  let hi = chars.length
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (encodeURIComponent(chars.slice(0, mid).join('')).length <= max) lo = mid
    else hi = mid - 1
  }
  return encodeURIComponent(chars.slice(0, lo).join(''))
}

/**
 * HashingLimiter plus what only the media route needs: the first bytes, for the type sniff,
 * available as soon as they have passed.
 */
export class PhotoHasher extends HashingLimiter {
  private readonly headParts: Buffer[] = []
  private headLen = 0
  private headDone: (b: Buffer) => void = () => {}
  /** The first SNIFF_BYTES bytes (fewer if the body is shorter, or failed). */
  readonly head = new Promise<Buffer>((resolve) => (this.headDone = resolve))
  /** Why the stream failed, if it did before anyone listened. */
  failure: Error | null = null

  constructor(limit: number) {
    super(limit)
    // The route attaches its own listeners only once the head is known; until then, keep the error.
    this.on('error', (err) => (this.failure ??= err))
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, cb: TransformCallback) {
    if (this.headLen < SNIFF_BYTES) {
      const part = chunk.subarray(0, SNIFF_BYTES - this.headLen)
      this.headParts.push(part)
      this.headLen += part.length
      if (this.headLen >= SNIFF_BYTES) this.headDone(Buffer.concat(this.headParts))
    }
    super._transform(chunk, enc, cb)
  }
  override _flush(cb: TransformCallback) {
    this.headDone(Buffer.concat(this.headParts))
    cb()
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void) {
    if (err) this.failure ??= err
    this.headDone(Buffer.concat(this.headParts))
    super._destroy(err, cb)
  }
}

export interface UploadPhotoOptions {
  s3: GatewayConfig['s3']
  maxMediaBytes: number
  ws: string
  session: string
  media: string
  tokenId: string
  /** The workspace's Redis shard, recorded for the sweeper. */
  shard: number
  /** The declared Content-Length; null for a chunked upload. */
  length: number | null
}

export interface UploadedPhoto {
  /** The upload's object key (objectKeys.upload). */
  key: string
  size: number
  sha256: string
  sniffedType: string
  filename: string | null
  contentType: string | null
  receivedAt: string
}

/** Streams the request body to its upload object; errors are already mapped to what the device should get. */
export async function uploadPhoto(request: FastifyRequest, o: UploadPhotoOptions): Promise<UploadedPhoto> {
  const filename = parseContentDisposition(request.headers['content-disposition'])
  const contentType = (request.declaredContentType ?? '').slice(0, 256) || null
  const receivedAt = new Date().toISOString()
  const uploadId = randomUUID()
  const key = objectKeys.upload(o.ws, o.session, o.media, uploadId)
  // What the sweeper needs to finish this upload if its job is ever lost.
  const metadata = {
    'workspace-id': o.ws,
    'session-id': o.session,
    'media-id': o.media,
    'token-id': o.tokenId,
    // The sweeper re-enqueues into the same shard, so BullMQ sees a job that still exists there.
    'redis-shard': String(o.shard),
    'received-at': receivedAt,
    filename: metaText(filename, 700),
    // Not 'content-type': S3 clients fold that into the object's own Content-Type header.
    'declared-content-type': metaText(contentType, 300),
  }
  const hasher = new PhotoHasher(o.maxMediaBytes)
  let spoolDir: string | null = null
  try {
    let size: number
    let body: Readable
    // The marker before the upload: an upload object then always has one, so none is left where
    // the sweeper cannot see it (a crash or a failure after this point leaves a marker for it to
    // settle). A chunked body is spooled first, so one refused while spooling leaves nothing.
    const marker = () =>
      streamPut(o.s3, o.s3.bucket, objectKeys.pending(o.ws, o.session, o.media, uploadId), Readable.from([]), { contentLength: 0 })
    if (o.length !== null) {
      await marker()
      // pipeBody: a device that disconnects mid-upload fails the PUT at once, and a failed
      // PUT leaves the request readable, so its answer reaches the device (drain.ts).
      body = pipeBody(request.raw, hasher)
      size = o.length
    } else {
      // No Content-Length (chunked): S3 needs one, so spool to disk first, never to memory.
      spoolDir = await mkdtemp(join(tmpdir(), 'rdt-spool-'))
      const file = join(spoolDir, 'body')
      await pipelineAsync(pipeBody(request.raw, hasher), createWriteStream(file))
      await marker()
      body = createReadStream(file)
      size = hasher.size
    }
    // The object is labelled with what its first bytes are: the PUT's headers wait for them
    // (they are in the device's first packet; the rest of the body waits in the socket meanwhile).
    const sniffedType = sniffType(await hasher.head)
    if (hasher.failure) throw hasher.failure
    // `size`: the length the object must have. Some S3 servers (the Versity gateway of the local
    // stack) keep the bytes of a PUT cut mid-body; the sweeper compares the object with this and
    // discards such a partial upload instead of storing it.
    // The sha256 goes with the PUT as its trailing checksum: the server stores the object only
    // if it received exactly the bytes the gateway hashed (otherwise 400, and the device a 503),
    // so the sha256 in the job is also the stored object's. (An MD5 for the ETag did the same
    // before, at 2.3 times sha256's cost: a third of the gateway's CPU per photo.)
    await streamPut(o.s3, o.s3.bucket, key, body, {
      contentLength: size,
      contentType: sniffedType,
      metadata: { ...metadata, size: String(size) },
      trailingSha256: () => hasher.sha256().toString('base64'),
    })
    return { key, size: hasher.size, sha256: hasher.sha256().toString('hex'), sniffedType, filename, contentType, receivedAt }
  } catch (err) {
    throw storageError(request, err)
  } finally {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true })
  }
}

/**
 * What a failed upload means for the device. If the body was not read to its end (S3
 * refused it mid-way, or it was too large), the answer is followed by a bounded drain of the rest
 * (drain.ts). Without it, the device's next request on this keep-alive connection was never
 * served and hung until the keep-alive timeout, then reset (found by faults/storage.faults.ts
 * with S3 stopped).
 */
function storageError(request: FastifyRequest, err: unknown): unknown {
  if (err instanceof HttpError) return err
  // Only a body that ended early is the device's fault. Not `destroyed`: a fully received
  // request is auto-destroyed after its end, so a small photo refused by an unreachable S3
  // was answered 400 instead of 503 (found by faults/storage.faults.ts).
  if (request.raw.readableAborted) return new HttpError(400, 'aborted', 'upload did not complete')
  if (isStorageUnavailable(err)) return unavailable('object storage')
  // Object storage refused or dropped a request we built: not the device's fault, so never
  // a 4xx (the device would retry a 4xx for ever anyway). 503 lets it retry after a pause;
  // the warning (with S3's status and message) and the 503 count show it to operators.
  if (err instanceof S3PutError) {
    request.log.warn({ status: err.statusCode, reason: err.message.slice(0, 200) }, 'object storage refused the photo upload')
    return unavailable('object storage')
  }
  return err
}
