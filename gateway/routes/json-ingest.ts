// The two JSON endpoints: the session and its logs. Both take the exact request bytes, check
// they are JSON, claim an idempotency key and enqueue one small job: two Redis round trips.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isUtf8 } from 'node:buffer'
import { createHash } from 'node:crypto'
import { jobIds, keys } from '../../shared/keys.ts'
import type { IdempotencyStore } from '../idempotency.ts'
import type { Authenticate, IngestContext } from '../auth.ts'
import { decodeBody, takeContentType } from '../body.ts'
import { assertCapacity, type BacklogMonitor } from '../backlog.ts'
import { HttpError, unavailable } from '../errors.ts'
import type { InFlightLimiter } from '../in-flight.ts'
import { claimLimited, tokenRateLimit, workspaceByteBudget } from '../token-rate-limit.ts'
import { logsSchema, sessionSchema } from '../route-schemas.ts'
import { ingestValidatorCompiler, validIds } from './params.ts'

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
  backlog: BacklogMonitor
  backpressureRetryAfterS: number
  inFlight: InFlightLimiter
  /** WORKSPACE_BYTES_PER_MINUTE (0 = off). */
  workspaceBytesPerMinute: number
  /** TEST HOOK only (Config.faultPauseAfterClaimMs); 0 in every real deployment. */
  faultPauseAfterClaimMs?: number
}

export const REDACTED_TOKEN = '[redacted-dsn-token]'

/**
 * WHATWG UTF-8 decoding: a leading byte-order mark is dropped (RFC 8259 §8.1 lets parsers ignore
 * one, and JSON.parse would refuse it) and invalid bytes become U+FFFD. Bodies that were not
 * valid UTF-8 are flagged on the job (`body_invalid_utf8`), so the stored record says that its
 * raw_body is not byte-exact; raw_sha256 is always of the exact bytes. The bytes themselves are
 * not kept: no JSON reader can use them, and a 5 MiB body of them is already 15 MiB of text.
 */
const utf8 = new TextDecoder('utf-8')

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
  // Params, headers and responses from gateway/route-schemas.ts (generated from gateway/schemas.ts);
  // no body schema: the body stays raw.
  app.setValidatorCompiler(ingestValidatorCompiler)
  const api = app.withTypeProvider<TypeBoxTypeProvider>()

  function prepare(request: FastifyRequest & { params: { dsn: string } }) {
    const raw = decodeBody((request.body as Buffer | undefined) ?? Buffer.alloc(0), request.headers['content-encoding'], deps.maxJsonBytes)
    // The hash is of the exact bytes, so replays are recognised whatever happens to the text below.
    const sha256 = createHash('sha256').update(raw).digest('hex')
    const valid = isUtf8(raw)
    const text = redactToken(utf8.decode(raw), request.params.dsn)
    // Each invalid byte becomes U+FFFD, 3 bytes as text: a body of them at the limit would be a
    // 15 MiB record that MongoDB refuses even as the fallback document, so its job would fail
    // after a 201. The limit therefore also holds for the text (only invalid bodies can grow).
    if (!valid && Buffer.byteLength(text, 'utf8') > deps.maxJsonBytes) {
      throw new HttpError(413, 'too_large', `body is larger than ${deps.maxJsonBytes} bytes once its invalid UTF-8 is replaced`)
    }
    const flag = valid ? {} : { body_invalid_utf8: true as const }
    return { raw, sha256, text, flag, received_at: new Date().toISOString() }
  }

  /** The two limits the claim checks: requests per token, and this body's bytes (as decoded) against its workspace's budget. */
  const limits = (request: FastifyRequest, bytes: number) =>
    [tokenRateLimit(deps.redisPrefix, request.ingest), workspaceByteBudget(deps.redisPrefix, request.ingest, deps.workspaceBytesPerMinute, bytes)] as const

  api.put('/ingest/:dsn/test_session/:session', {
    schema: sessionSchema,
    onRequest: async (request, reply) => {
      takeContentType(request) // any Content-Type, even a malformed one, is accepted (body.ts)
      validIds(request.params)
      assertCapacity(deps.backlog, 'sessions', deps.backpressureRetryAfterS, request.log)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'test_session')
      deps.inFlight.acquire(request, reply, request.ingest.tokenId)
    },
    handler: async (request, reply) => {
      const { raw, sha256, text, flag, received_at } = prepare(request)
      const body = parseJson(text)
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new HttpError(400, 'not_an_object', 'a test session must be a JSON object')
      }
      const { workspaceId: ws, tokenId } = request.ingest
      const session = request.params.session
      const origin = { workspace_id: ws, session_id: session, token_id: tokenId, received_at, sha256, body: text, ...flag }
      const idemKey = k.idempotency('s', ws, session)
      const jobId = jobIds.session(ws, session)
      const claim = await deps.idempotency.claim(idemKey, k.job('sessions', jobId), sha256, ...limits(request, raw.length))
      if (claim.state === 'limited') throw claimLimited(request, request.ingest, claim)
      if (claim.state === 'busy') throw unavailable('a concurrent upload of this session')
      if (claim.state === 'dup') {
        if (claim.sha256 !== sha256) {
          // Same GUID, different body: 409 as the spec says, but the body is kept for operators.
          await app.queues.sessions.add('conflict', { kind: 'conflict', ...origin }, { jobId: jobIds.conflict(ws, session, sha256) })
        }
        return reply.code(409).send({ error: 'conflict', message: 'this test session already exists' })
      }
      // TEST HOOK: holds the claimed key before the enqueue, so that faults/gateway.faults.ts can
      // SIGKILL the gateway inside the crash window between the two. Never set in production.
      if (deps.faultPauseAfterClaimMs) await new Promise((resolve) => setTimeout(resolve, deps.faultPauseAfterClaimMs))
      try {
        await app.queues.sessions.add('session', { kind: 'session', ...origin }, { jobId })
      } catch (err) {
        await deps.idempotency.release(idemKey, claim.token).catch(() => {})
        throw err
      }
      return reply.code(201).send({ status: 'accepted' })
    },
  })

  api.put('/ingest/:dsn/test_session/:session/logs', {
    schema: logsSchema,
    onRequest: async (request, reply) => {
      takeContentType(request) // any Content-Type, even a malformed one, is accepted (body.ts)
      validIds(request.params)
      assertCapacity(deps.backlog, 'logs', deps.backpressureRetryAfterS, request.log)
      request.ingest = await deps.authenticate(request, request.params.dsn, 'logs')
      deps.inFlight.acquire(request, reply, request.ingest.tokenId)
    },
    handler: async (request, reply) => {
      const { raw, sha256, text, flag, received_at } = prepare(request)
      const body = parseJson(text)
      if (typeof body !== 'object' || body === null) throw new HttpError(400, 'not_an_object', 'logs must be a JSON object or array')
      const { workspaceId: ws, tokenId } = request.ingest
      const session = request.params.session
      const idemKey = k.idempotency('l', ws, session, sha256)
      const jobId = jobIds.logs(ws, session, sha256)
      const claim = await deps.idempotency.claim(idemKey, k.job('logs', jobId), sha256, ...limits(request, raw.length))
      if (claim.state === 'limited') throw claimLimited(request, request.ingest, claim)
      if (claim.state === 'busy') throw unavailable('a concurrent upload of these logs')
      // A byte-identical replay is already stored (or queued): it is answered 201 like the first.
      if (claim.state === 'claimed') {
        const job = { kind: 'logs' as const, workspace_id: ws, session_id: session, token_id: tokenId, received_at, sha256, body: text, ...flag }
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
