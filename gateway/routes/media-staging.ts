// The staging step of a photo upload: the body streamed from the device's socket to a staging
// object in S3, hashed and counted on the way, never held in memory. The object's key is unique to
// this upload (it ends in a random id), and its metadata carries what the sweeper needs to finish
// the photo if its job is ever lost.
import type { FastifyRequest } from 'fastify'
import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import type { GatewayConfig } from '../config.ts'
import { objectKeys } from '../../shared/keys.ts'
import { S3PutError, streamPut } from '../../shared/s3-stream-put.ts'
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

export interface StagePhotoOptions {
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

export interface StagedPhoto {
  stagingKey: string
  size: number
  sha256: string
  filename: string | null
  contentType: string | null
  receivedAt: string
}

/** Streams the request body to its staging object; errors are already mapped to what the device should get. */
export async function stagePhoto(request: FastifyRequest, o: StagePhotoOptions): Promise<StagedPhoto> {
  const filename = parseContentDisposition(request.headers['content-disposition'])
  const contentType = (request.declaredContentType ?? '').slice(0, 256) || null
  const receivedAt = new Date().toISOString()
  const stagingKey = objectKeys.staging(o.ws, o.session, o.media, randomUUID())
  // What the sweeper needs to finish this object if its job is ever lost.
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
  const hasher = new HashingLimiter(o.maxMediaBytes)
  let spoolDir: string | null = null
  try {
    if (o.length !== null) {
      // pipeBody: a device that disconnects mid-upload fails the PUT at once, and a failed
      // PUT leaves the request readable, so its answer reaches the device (drain.ts).
      const body = pipeBody(request.raw, hasher)
      // `size`: the length the object must have. Some S3 servers (the Versity gateway of
      // the local stack) keep the bytes of a PUT cut mid-body; the sweeper compares the
      // object with this and discards such a partial upload instead of storing it.
      await streamPut(o.s3, o.s3.bucket, stagingKey, body, { contentLength: o.length, metadata: { ...metadata, size: String(o.length) } })
    } else {
      // No Content-Length (chunked): S3 needs one, so spool to disk first, never to memory.
      spoolDir = await mkdtemp(join(tmpdir(), 'rdt-spool-'))
      const file = join(spoolDir, 'body')
      await pipelineAsync(pipeBody(request.raw, hasher), createWriteStream(file))
      await streamPut(o.s3, o.s3.bucket, stagingKey, createReadStream(file), {
        contentLength: hasher.size,
        metadata: { ...metadata, size: String(hasher.size) },
      })
    }
  } catch (err) {
    throw storageError(request, err)
  } finally {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true })
  }
  return { stagingKey, size: hasher.size, sha256: hasher.hash.digest('hex'), filename, contentType, receivedAt }
}

/**
 * What a failed staging upload means for the device. If the body was not read to its end (S3
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
    request.log.warn({ status: err.statusCode, reason: err.message.slice(0, 200) }, 'object storage refused the staging upload')
    return unavailable('object storage')
  }
  return err
}
