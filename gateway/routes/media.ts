// The media endpoint. The photo is streamed from the device's socket to a staging object in S3
// (never held in memory, never in Redis); the job is only a claim check on that object.
import type { FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { rm, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import type { Config } from '../../shared/config.ts'
import { jobIds, keys, objectKeys } from '../../shared/keys.ts'
import type { MediaJob } from '../../shared/queues.ts'
import { streamPut } from '../../shared/s3-stream-put.ts'
import type { Authenticate } from '../auth.ts'
import { parseContentDisposition } from '../content-disposition.ts'
import { HashingLimiter, tooLarge } from '../body.ts'
import { HttpError, isStorageUnavailable, unavailable } from '../errors.ts'
import type { IdempotencyStore } from '../idempotency.ts'
import { validIds } from './params.ts'

interface Deps {
  redisPrefix: string
  s3: Config['s3']
  maxMediaBytes: number
  pendingTimeoutMs: number
  idempotency: IdempotencyStore
  authenticate: Authenticate
}

type Params = { dsn: string; session: string; media: string }

/** Free text in S3 metadata must be ASCII: URI-encode it, bounded. */
const metaText = (s: string | null) => (s === null ? '' : encodeURIComponent(s).slice(0, 1024))

export default async function mediaRoutes(app: FastifyInstance, deps: Deps) {
  const k = keys(deps.redisPrefix)
  // Leave the body untouched: the handler streams request.raw itself.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))

  app.put<{ Params: Params }>('/ingest/:dsn/test_session/:session/media/:media', {
    onRequest: async (request) => {
      validIds(request.params)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'media')
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
      const claim = await deps.idempotency.claim(idemKey, k.job('media', jobId), '')
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
        const contentType = (request.headers['content-type'] ?? '').slice(0, 256) || null
        const received_at = new Date().toISOString()
        const stagingKey = objectKeys.staging(ws, session, media, randomUUID())
        // What the sweeper needs to finish this object if its job is ever lost.
        const metadata = {
          'workspace-id': ws,
          'session-id': session,
          'media-id': media,
          'token-id': tokenId,
          'received-at': received_at,
          filename: metaText(filename),
          // Not 'content-type': S3 clients fold that into the object's own Content-Type header.
          'declared-content-type': metaText(contentType),
        }
        const hasher = new HashingLimiter(deps.maxMediaBytes)
        const bucket = deps.s3.bucket
        try {
          if (length !== null) {
            // pipeline (not pipe) so that a device that disconnects mid-upload fails the PUT at once.
            const body = pipeline(request.raw, hasher, () => {})
            await streamPut(deps.s3, bucket, stagingKey, body, { contentLength: length, metadata })
          } else {
            // No Content-Length (chunked): S3 needs one, so spool to disk first, never to memory.
            spoolDir = await mkdtemp(join(tmpdir(), 'rdt-spool-'))
            const file = join(spoolDir, 'body')
            await pipelineAsync(request.raw, hasher, createWriteStream(file))
            await streamPut(deps.s3, bucket, stagingKey, createReadStream(file), { contentLength: hasher.size, metadata })
          }
        } catch (err) {
          if (err instanceof HttpError) throw err
          if (request.raw.destroyed || request.raw.readableAborted) throw new HttpError(400, 'aborted', 'upload did not complete')
          if (isStorageUnavailable(err)) throw unavailable('object storage')
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
        await app.queues.media.add('media', job, { jobId })
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
