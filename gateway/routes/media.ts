// The media endpoint. The photo is streamed from the device's socket to its own object in S3
// (never held in memory, never in Redis), where it stays; the job is only a claim check on it.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config.ts'
import { jobIds } from '../../shared/keys.ts'
import type { MediaJob } from '../../shared/queues.ts'
import { takeContentType, tooLarge } from '../body.ts'
import { addMediaJobWithStaging } from '../../shared/staged-media.ts'
import { HttpError } from '../errors.ts'
import type { IdempotencyStore } from '../../shared/idempotency.ts'
import { tokenRateLimit, workspaceByteBudget } from '../token-rate-limit.ts'
import { mediaSchema } from '../route-schemas.ts'
import { claimOrRefuse, DELETED, enqueueOrRelease, ingestPreflight, type PreflightDeps } from './ingest-steps.ts'
import { ingestValidatorCompiler } from './params.ts'
import { uploadPhoto } from './media-upload.ts'

interface Deps extends PreflightDeps {
  s3: GatewayConfig['s3']
  maxMediaBytes: number
  pendingTimeoutMs: number
  idempotency: IdempotencyStore
  /** WORKSPACE_BYTES_PER_MINUTE (0 = off). */
  workspaceBytesPerMinute: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The Content-Type the device declared (taken off the headers so that any value is accepted). */
    declaredContentType: string | null
  }
}

/** The declared Content-Length (null: chunked); refuses a photo that says it is too large, or is compressed. */
function declaredLength(request: FastifyRequest, maxMediaBytes: number): number | null {
  const declared = request.headers['content-length']
  const length = declared === undefined ? null : Number(declared)
  if (length !== null && length > maxMediaBytes) throw tooLarge(maxMediaBytes)
  if (request.headers['content-encoding'] && request.headers['content-encoding'] !== 'identity') {
    throw new HttpError(415, 'unsupported_encoding', 'media must be sent without Content-Encoding')
  }
  return length
}

/** Keeps a claim fresh while a slow phone uploads, so that it is not taken as abandoned; `token()` is the current one. */
function keepClaimFresh(idempotency: IdempotencyStore, idemKey: string, token: string, pendingTimeoutMs: number) {
  const refresh = setInterval(
    () => {
      idempotency.touch(idemKey, token).then(
        (t) => t && (token = t),
        () => {},
      )
    },
    Math.max(100, pendingTimeoutMs / 3),
  )
  return { token: () => token, stop: () => clearInterval(refresh) }
}

export default async function mediaRoutes(app: FastifyInstance, deps: Deps) {
  // Leave the body untouched: the handler streams request.raw itself.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  app.decorateRequest('declaredContentType', null)
  // Params, headers and responses from gateway/route-schemas.json (generated from gateway/schemas.ts);
  // no body schema: the handler streams the body.
  app.setValidatorCompiler(ingestValidatorCompiler)

  app.withTypeProvider<TypeBoxTypeProvider>().put('/ingest/:dsn/test_session/:session/media/:media', {
    schema: mediaSchema,
    // Backpressure here covers the media queue's backlog, the staged bytes and Redis memory (backlog.ts).
    onRequest: ingestPreflight(deps, 'media', 'media', (request) => {
      request.declaredContentType = takeContentType(request) ?? null
    }),
    handler: async (request, reply) => {
      const { session, media } = request.params
      const { workspaceId: ws, tokenId, shard } = request.ingest
      const k = shard.keys
      const length = declaredLength(request, deps.maxMediaBytes)

      const idemKey = k.idempotency('m', ws, session, media)
      const jobId = jobIds.media(ws, session, media)
      // The byte budget is charged the declared length up front, before a byte is read. A chunked
      // photo's size is known only once read: the claim checks that the budget is not already
      // spent, and its bytes are charged after the upload (below).
      const budget = workspaceByteBudget(request.ingest, deps.workspaceBytesPerMinute, length ?? 0)
      const rateLimit = tokenRateLimit(request.ingest)
      const claim = await claimOrRefuse(deps.idempotency, request, {
        idemKey,
        jobKey: k.job('media', jobId),
        deleted: { key: k.deletedSessions(ws), session },
        sha256: '',
        rateLimit,
        budget,
        what: 'this media',
      })
      if (claim.state === 'deleted') {
        await deps.confirmReplicated(k.replicationMarker)
        return reply.code(409).send(DELETED)
      }
      if (claim.state === 'dup') {
        await deps.confirmReplicated(k.replicationMarker)
        return reply.code(409).send({ error: 'conflict', message: 'this media already exists' })
      }

      const fresh = keepClaimFresh(deps.idempotency, idemKey, claim.token, deps.pendingTimeoutMs)
      try {
        // The upload counts as part of the enqueue: if either fails, the claim is released.
        await enqueueOrRelease(deps.idempotency, idemKey, fresh.token, async () => {
          const uploaded = await uploadPhoto(request, {
            s3: deps.s3,
            maxMediaBytes: deps.maxMediaBytes,
            ws,
            session,
            media,
            tokenId,
            shard: shard.index,
            length,
          })
          const job: MediaJob = {
            kind: 'media',
            workspace_id: ws,
            session_id: session,
            token_id: tokenId,
            received_at: uploaded.receivedAt,
            media_id: media,
            bucket: deps.s3.bucket,
            staging_key: uploaded.key,
            size: uploaded.size,
            sha256: uploaded.sha256,
            filename: uploaded.filename,
            content_type: uploaded.contentType,
            sniffed_type: uploaded.sniffedType,
          }
          // The job and its unsettled bytes (for backpressure) in one MULTI: the round trip the add
          // made anyway. A chunked photo's bytes are charged to the byte budget alongside
          // (accounting only: a failed charge does not fail the upload).
          const charge =
            budget && length === null ? deps.idempotency.chargeBytes({ ...budget, bytes: uploaded.size }).catch(() => {}) : null
          await addMediaJobWithStaging(shard.queues.media, app.redis, shard.prefix, job, jobId)
          await charge
        })
      } finally {
        fresh.stop()
      }
      await deps.confirmReplicated(k.replicationMarker)
      return reply.code(201).send({ status: 'accepted' })
    },
  })
}
