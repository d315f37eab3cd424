// The two JSON endpoints: the session and its logs. Both take the exact request bytes, check
// they are JSON, claim an idempotency key and enqueue one small job: two Redis round trips.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isUtf8 } from 'node:buffer'
import { createHash } from 'node:crypto'
import { jobIds } from '../../shared/keys.ts'
import type { IdempotencyStore } from '../../shared/idempotency.ts'
import type { IngestContext } from '../auth.ts'
import { decodeBody, takeContentType } from '../body.ts'
import { HttpError } from '../errors.ts'
import { tokenRateLimit, workspaceByteBudget } from '../token-rate-limit.ts'
import { logsSchema, sessionSchema } from '../route-schemas.ts'
import { claimOrRefuse, DELETED, enqueueOrRelease, ingestPreflight, type PreflightDeps } from './ingest-steps.ts'
import { ingestValidatorCompiler } from './params.ts'

declare module 'fastify' {
  interface FastifyRequest {
    ingest: IngestContext
  }
}

interface Deps extends PreflightDeps {
  maxJsonBytes: number
  idempotency: IdempotencyStore
  /** WORKSPACE_BYTES_PER_MINUTE (0 = off). */
  workspaceBytesPerMinute: number
  /** TEST HOOK only (GatewayHooks.pauseAfterClaimMs); unset in every real deployment. */
  pauseAfterClaimMs?: number
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

type JsonRequest = FastifyRequest & { params: { dsn: string; session: string } }

export default async function jsonIngestRoutes(app: FastifyInstance, deps: Deps) {
  // Whatever the Content-Type (devices and proxies get it wrong), the body is read as bytes:
  // the exact bytes are what we store and hash.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: deps.maxJsonBytes }, (_req, body, done) => done(null, body))
  // Params, headers and responses from gateway/route-schemas.json (generated from gateway/schemas.ts);
  // no body schema: the body stays raw.
  app.setValidatorCompiler(ingestValidatorCompiler)
  const api = app.withTypeProvider<TypeBoxTypeProvider>()

  api.put('/ingest/:dsn/test_session/:session', {
    schema: sessionSchema,
    onRequest: ingestPreflight(deps, 'sessions', 'test_session', takeContentType),
    handler: async (request, reply) => {
      const outcome = await putSession(app, deps, request)
      if (outcome === 'deleted') return reply.code(409).send(DELETED)
      if (outcome === 'duplicate') {
        return reply.code(409).send({ error: 'conflict', message: 'this test session already exists' })
      }
      return reply.code(201).send({ status: 'accepted' })
    },
  })

  api.put('/ingest/:dsn/test_session/:session/logs', {
    schema: logsSchema,
    onRequest: ingestPreflight(deps, 'logs', 'logs', takeContentType),
    handler: async (request, reply) => {
      if ((await putLogs(app, deps, request)) === 'deleted') return reply.code(409).send(DELETED)
      return reply.code(201).send({ status: 'accepted' })
    },
  })
}

/** A session: claimed once per GUID; a later upload is answered 409, and kept if its body differs. */
async function putSession(app: FastifyInstance, deps: Deps, request: JsonRequest): Promise<'accepted' | 'duplicate' | 'deleted'> {
  const body = prepare(deps, request, false, 'a test session must be a JSON object')
  const { ws, session, sha256 } = body
  const { keys: k, queues } = request.ingest.shard
  const idemKey = k.idempotency('s', ws, session)
  const jobId = jobIds.session(ws, session)
  const claim = await claimBody(deps, request, body, idemKey, k.job('sessions', jobId), 'this session')
  if (claim.state === 'deleted') {
    await deps.confirmReplicated(k.replicationMarker)
    return 'deleted'
  }
  if (claim.state === 'dup') {
    if (claim.sha256 !== sha256) {
      // Same GUID, different body: 409 as the spec says, but the body is kept for operators.
      await queues.sessions.add('conflict', { kind: 'conflict', ...jobFields(body) }, { jobId: jobIds.conflict(ws, session, sha256) })
    }
    await deps.confirmReplicated(k.replicationMarker)
    return 'duplicate'
  }
  // TEST HOOK: holds the claimed key before the enqueue, so that faults/gateway.faults.ts can
  // SIGKILL the gateway inside the crash window between the two. Never set in production.
  if (deps.pauseAfterClaimMs) await new Promise((resolve) => setTimeout(resolve, deps.pauseAfterClaimMs))
  await enqueueOrRelease(
    deps.idempotency,
    idemKey,
    () => claim.token,
    () => queues.sessions.add('session', { kind: 'session', ...jobFields(body) }, { jobId }),
  )
  await deps.confirmReplicated(k.replicationMarker)
  return 'accepted'
}

/** A batch of logs: claimed per body hash; a byte-identical replay is already stored (or queued) and answered 201 like the first. */
async function putLogs(app: FastifyInstance, deps: Deps, request: JsonRequest): Promise<'accepted' | 'deleted'> {
  const body = prepare(deps, request, true, 'logs must be a JSON object or array')
  const { ws, session, sha256 } = body
  const { keys: k, queues } = request.ingest.shard
  const idemKey = k.idempotency('l', ws, session, sha256)
  const jobId = jobIds.logs(ws, session, sha256)
  const claim = await claimBody(deps, request, body, idemKey, k.job('logs', jobId), 'these logs')
  if (claim.state !== 'claimed') {
    await deps.confirmReplicated(k.replicationMarker)
    return claim.state === 'deleted' ? 'deleted' : 'accepted'
  }
  await enqueueOrRelease(
    deps.idempotency,
    idemKey,
    () => claim.token,
    () => queues.logs.add('logs', { kind: 'logs', ...jobFields(body) }, { jobId }),
  )
  await deps.confirmReplicated(k.replicationMarker)
  return 'accepted'
}

type PreparedBody = ReturnType<typeof prepare>

/**
 * The body as both JSON routes take it: exact bytes, their hash, the text as kept, and the
 * parsed value, which must be an object (or, where `arrays`, an array): anything else is the one
 * body not worth keeping (400).
 */
function prepare(deps: Deps, request: JsonRequest, arrays: boolean, refusal: string) {
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
  const body = parseJson(text)
  if (typeof body !== 'object' || body === null || (Array.isArray(body) && !arrays)) throw new HttpError(400, 'not_an_object', refusal)
  const { workspaceId: ws, tokenId } = request.ingest
  return { raw, sha256, text, flag, received_at: new Date().toISOString(), ws, tokenId, session: request.params.session }
}

/** The job fields both routes enqueue: who sent what, when, and the body as kept. */
function jobFields(p: PreparedBody) {
  return {
    workspace_id: p.ws,
    session_id: p.session,
    token_id: p.tokenId,
    received_at: p.received_at,
    sha256: p.sha256,
    body: p.text,
    ...p.flag,
  }
}

/**
 * Claims the body's key against the two limits the claim checks: requests per token, and this
 * body's bytes (as decoded) against its workspace's budget.
 */
function claimBody(deps: Deps, request: FastifyRequest, p: PreparedBody, idemKey: string, jobKey: string, what: string) {
  return claimOrRefuse(deps.idempotency, request, {
    idemKey,
    jobKey,
    deleted: { key: request.ingest.shard.keys.deletedSessions(p.ws), session: p.session },
    sha256: p.sha256,
    rateLimit: tokenRateLimit(request.ingest),
    budget: workspaceByteBudget(request.ingest, deps.workspaceBytesPerMinute, p.raw.length),
    what,
  })
}
