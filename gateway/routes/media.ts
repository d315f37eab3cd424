// The media endpoint. The photo is streamed from the device's socket to a staging object in S3
// (never held in memory, never in Redis); the job is only a claim check on that object.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rm, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import type { Config } from '../../shared/config.ts'
import { jobIds, keys, objectKeys } from '../../shared/keys.ts'
import type { MediaJob } from '../../shared/queues.ts'
import { S3PutError, streamPut } from '../../shared/s3-stream-put.ts'
import type { Authenticate } from '../auth.ts'
import { parseContentDisposition } from '../content-disposition.ts'
import { HashingLimiter, pipeBody, takeContentType, tooLarge } from '../body.ts'
import { addMediaJobWithStaging } from '../../shared/staged-media.ts'
import { assertCapacity, type BacklogMonitor } from '../backlog.ts'
import { HttpError, isStorageUnavailable, unavailable } from '../errors.ts'
import type { IdempotencyStore } from '../idempotency.ts'
import type { InFlightLimiter } from '../in-flight.ts'
import { claimLimited, tokenRateLimit, workspaceByteBudget } from '../token-rate-limit.ts'
import { mediaSchema } from '../route-schemas.ts'
import { ingestValidatorCompiler, validIds } from './params.ts'

interface Deps {
  redisPrefix: string
  s3: Config['s3']
  maxMediaBytes: number
  pendingTimeoutMs: number
  idempotency: IdempotencyStore
  authenticate: Authenticate
  backlog: BacklogMonitor
  backpressureRetryAfterS: number
  inFlight: InFlightLimiter
  /** WORKSPACE_BYTES_PER_MINUTE (0 = off). */
  workspaceBytesPerMinute: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The Content-Type the device declared (taken off the headers so that any value is accepted). */
    declaredContentType: string | null
  }
}

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

export default async function mediaRoutes(app: FastifyInstance, deps: Deps) {
  const k = keys(deps.redisPrefix)
  // Leave the body untouched: the handler streams request.raw itself.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  app.decorateRequest('declaredContentType', null)
  // Params, headers and responses from gateway/route-schemas.ts (generated from gateway/schemas.ts);
  // no body schema: the handler streams the body.
  app.setValidatorCompiler(ingestValidatorCompiler)

  app.withTypeProvider<TypeBoxTypeProvider>().put('/ingest/:dsn/test_session/:session/media/:media', {
    schema: mediaSchema,
    onRequest: async (request, reply) => {
      request.declaredContentType = takeContentType(request) ?? null
      validIds(request.params)
      // Covers the media queue's backlog, the staged bytes and Redis memory (backlog.ts).
      assertCapacity(deps.backlog, 'media', deps.backpressureRetryAfterS, request.log)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'media')
      deps.inFlight.acquire(request, reply, request.ingest.tokenId)
    },
    handler: async (request, reply) => {
      const { session, media } = request.params
      const { workspaceId: ws, tokenId } = request.ingest
      const declared = request.headers['content-length']
      const length = declared === undefined ? null : Number(declared)
      if (length !== null && length > deps.maxMediaBytes) throw tooLarge(deps.maxMediaBytes)
      if (request.headers['content-encoding'] && request.headers['content-encoding'] !== 'identity') {
        throw new HttpError(415, 'unsupported_encoding', 'media must be sent without Content-Encoding')
      }

      const idemKey = k.idempotency('m', ws, session, media)
      const jobId = jobIds.media(ws, session, media)
      // The byte budget is charged the declared length up front, before a byte is read. A chunked
      // photo's size is known only once read: the claim checks that the budget is not already
      // spent, and its bytes are charged after the upload (below).
      const budget = workspaceByteBudget(deps.redisPrefix, request.ingest, deps.workspaceBytesPerMinute, length ?? 0)
      const claim = await deps.idempotency.claim(idemKey, k.job('media', jobId), '', tokenRateLimit(deps.redisPrefix, request.ingest), budget)
      if (claim.state === 'limited') throw claimLimited(request, request.ingest, claim)
      if (claim.state === 'busy') throw unavailable('a concurrent upload of this media')
      if (claim.state === 'dup') return reply.code(409).send({ error: 'conflict', message: 'this media already exists' })

      // Keep the claim fresh while a slow phone uploads, so it is not taken as abandoned.
      let token = claim.token
      const refresh = setInterval(() => {
        deps.idempotency.touch(idemKey, token).then((t) => t && (token = t), () => {})
      }, Math.max(100, deps.pendingTimeoutMs / 3))
      let spoolDir: string | null = null
      try {
        const filename = parseContentDisposition(request.headers['content-disposition'])
        const contentType = (request.declaredContentType ?? '').slice(0, 256) || null
        const received_at = new Date().toISOString()
        const stagingKey = objectKeys.staging(ws, session, media, randomUUID())
        // What the sweeper needs to finish this object if its job is ever lost.
        const metadata = {
          'workspace-id': ws,
          'session-id': session,
          'media-id': media,
          'token-id': tokenId,
          'received-at': received_at,
          filename: metaText(filename, 700),
          // Not 'content-type': S3 clients fold that into the object's own Content-Type header.
          'declared-content-type': metaText(contentType, 300),
        }
        const hasher = new HashingLimiter(deps.maxMediaBytes)
        const bucket = deps.s3.bucket
        try {
          if (length !== null) {
            // pipeBody: a device that disconnects mid-upload fails the PUT at once, and a failed
            // PUT leaves the request readable, so its answer reaches the device (drain.ts).
            const body = pipeBody(request.raw, hasher)
            // `size`: the length the object must have. Some S3 servers (the Versity gateway of
            // the local stack) keep the bytes of a PUT cut mid-body; the sweeper compares the
            // object with this and discards such a partial upload instead of storing it.
            await streamPut(deps.s3, bucket, stagingKey, body, { contentLength: length, metadata: { ...metadata, size: String(length) } })
          } else {
            // No Content-Length (chunked): S3 needs one, so spool to disk first, never to memory.
            spoolDir = await mkdtemp(join(tmpdir(), 'rdt-spool-'))
            const file = join(spoolDir, 'body')
            await pipelineAsync(pipeBody(request.raw, hasher), createWriteStream(file))
            await streamPut(deps.s3, bucket, stagingKey, createReadStream(file), { contentLength: hasher.size, metadata: { ...metadata, size: String(hasher.size) } })
          }
        } catch (err) {
          // If the body was not read to its end (S3 refused it mid-way, or it was too large), the
          // answer is followed by a bounded drain of the rest (drain.ts). Without it, the device's
          // next request on this keep-alive connection was never served and hung until the
          // keep-alive timeout, then reset (found by faults/storage.faults.ts with S3 stopped).
          if (err instanceof HttpError) throw err
          // Only a body that ended early is the device's fault. Not `destroyed`: a fully received
          // request is auto-destroyed after its end, so a small photo refused by an unreachable S3
          // was answered 400 instead of 503 (found by faults/storage.faults.ts).
          if (request.raw.readableAborted) throw new HttpError(400, 'aborted', 'upload did not complete')
          if (isStorageUnavailable(err)) throw unavailable('object storage')
          // Object storage refused or dropped a request we built: not the device's fault, so never
          // a 4xx (the device would retry a 4xx for ever anyway). 503 lets it retry after a pause;
          // the warning (with S3's status and message) and the 503 count show it to operators.
          if (err instanceof S3PutError) {
            request.log.warn({ status: err.statusCode, reason: err.message.slice(0, 200) }, 'object storage refused the staging upload')
            throw unavailable('object storage')
          }
          throw err
        }
        const job: MediaJob = {
          kind: 'media',
          workspace_id: ws,
          session_id: session,
          token_id: tokenId,
          received_at,
          media_id: media,
          bucket,
          staging_key: stagingKey,
          size: hasher.size,
          sha256: hasher.hash.digest('hex'),
          filename,
          content_type: contentType,
        }
        // The job and its staged bytes (for backpressure) in one MULTI: the round trip the add made anyway.
        // A chunked photo's bytes are charged to the byte budget alongside (accounting only: a
        // failed charge does not fail the upload).
        const charge = budget && length === null ? deps.idempotency.chargeBytes({ ...budget, bytes: hasher.size }).catch(() => {}) : null
        await addMediaJobWithStaging(app.queues.media, app.redis, deps.redisPrefix, job, jobId)
        await charge
        return reply.code(201).send({ status: 'accepted' })
      } catch (err) {
        await deps.idempotency.release(idemKey, token).catch(() => {})
        throw err
      } finally {
        clearInterval(refresh)
        if (spoolDir) await rm(spoolDir, { recursive: true, force: true })
      }
    },
  })
}
