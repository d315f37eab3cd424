// The two JSON endpoints: the session and its logs. Both take the exact request bytes, check
// they are JSON, claim an idempotency key and enqueue one small job: two Redis round trips.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import { jobIds, keys } from '../../shared/keys.ts'
import type { IdempotencyStore } from '../idempotency.ts'
import type { Authenticate, IngestContext } from '../auth.ts'
import { decodeBody } from '../body.ts'
import { HttpError, unavailable } from '../errors.ts'
import { validIds } from './params.ts'

declare module 'fastify' {
  interface FastifyRequest {
    ingest: IngestContext
  }
}

interface Deps {
  redisPrefix: string
  maxJsonBytes: number
  idempotency: IdempotencyStore
  authenticate: Authenticate
}

type Params = { dsn: string; session: string }

export const REDACTED_TOKEN = '[redacted-dsn-token]'

/**
 * A session can carry the device's own DSN (its configuration names the Cloudworks endpoint).
 * Tokens are stored only as hashes, so the token is cut out of the kept body; that is the one
 * difference between `raw_body` and the bytes the device sent.
 */
function redactToken(text: string, token: string): string {
  return text.includes(token) ? text.replaceAll(token, REDACTED_TOKEN) : text
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new HttpError(400, 'invalid_json', 'body is not valid JSON')
  }
}

export default async function jsonIngestRoutes(app: FastifyInstance, deps: Deps) {
  const k = keys(deps.redisPrefix)

  // Whatever the Content-Type (devices and proxies get it wrong), the body is read as bytes:
  // the exact bytes are what we store and hash.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxJsonBytes }, (_req, body, done) => done(null, body))

  function prepare(request: FastifyRequest<{ Params: Params }>) {
    const raw = decodeBody((request.body as Buffer | undefined) ?? Buffer.alloc(0), request.headers['content-encoding'], deps.maxJsonBytes)
    // The hash is of the exact bytes, so replays are recognised whatever happens to the text below.
    const sha256 = createHash('sha256').update(raw).digest('hex')
    return { raw, sha256, text: redactToken(raw.toString('utf8'), request.params.dsn), received_at: new Date().toISOString() }
  }

  app.put<{ Params: Params }>('/ingest/:dsn/test_session/:session', {
    onRequest: async (request) => {
      validIds(request.params)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'test_session')
    },
    handler: async (request, reply) => {
      const { sha256, text, received_at } = prepare(request)
      const body = parseJson(text)
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new HttpError(400, 'not_an_object', 'a test session must be a JSON object')
      }
      const { workspaceId: ws, tokenId } = request.ingest
      const session = request.params.session
      const origin = { workspace_id: ws, session_id: session, token_id: tokenId, received_at, sha256, body: text }
      const idemKey = k.idempotency('s', ws, session)
      const jobId = jobIds.session(ws, session)
      const claim = await deps.idempotency.claim(idemKey, k.job('sessions', jobId), sha256)
      if (claim.state === 'busy') throw unavailable('a concurrent upload of this session')
      if (claim.state === 'dup') {
        if (claim.sha256 !== sha256) {
          // Same GUID, different body: 409 as the spec says, but the body is kept for operators.
          await app.queues.sessions.add('conflict', { kind: 'conflict', ...origin }, { jobId: jobIds.conflict(ws, session, sha256) })
        }
        return reply.code(409).send({ error: 'conflict', message: 'this test session already exists' })
      }
      try {
        await app.queues.sessions.add('session', { kind: 'session', ...origin }, { jobId })
      } catch (err) {
        await deps.idempotency.release(idemKey, claim.token).catch(() => {})
        throw err
      }
      return reply.code(201).send({ status: 'accepted' })
    },
  })

  app.put<{ Params: Params }>('/ingest/:dsn/test_session/:session/logs', {
    onRequest: async (request) => {
      validIds(request.params)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'logs')
    },
    handler: async (request, reply) => {
      const { sha256, text, received_at } = prepare(request)
      const body = parseJson(text)
      if (typeof body !== 'object' || body === null) throw new HttpError(400, 'not_an_object', 'logs must be a JSON object or array')
      const { workspaceId: ws, tokenId } = request.ingest
      const session = request.params.session
      const idemKey = k.idempotency('l', ws, session, sha256)
      const jobId = jobIds.logs(ws, session, sha256)
      const claim = await deps.idempotency.claim(idemKey, k.job('logs', jobId), sha256)
      if (claim.state === 'busy') throw unavailable('a concurrent upload of these logs')
      // A byte-identical replay is already stored (or queued): it is answered 201 like the first.
      if (claim.state === 'claimed') {
        const job = { kind: 'logs' as const, workspace_id: ws, session_id: session, token_id: tokenId, received_at, sha256, body: text }
        try {
          await app.queues.logs.add('logs', job, { jobId })
        } catch (err) {
          await deps.idempotency.release(idemKey, claim.token).catch(() => {})
          throw err
        }
      }
      return reply.code(201).send({ status: 'accepted' })
    },
  })
}
