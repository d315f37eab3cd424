// The steps every ingest route takes, in this order, written once:
// 1. pre-flight, before a byte of the body is read: ids, capacity, the DSN, an in-flight slot;
// 2. claim the idempotency key, or refuse (429 over a limit, 503 while another upload holds it);
// 3. enqueue, and release the claim if that fails, so that the device's retry can claim it again.
// What differs per route (how the body is read, what a duplicate answers) stays in the route.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { QueueName } from '../../shared/queue-settings.ts'
import type { Permission } from '../../shared/permissions.ts'
import type { Authenticate } from '../auth.ts'
import type { ConfirmReplicated } from '../replication.ts'
import { assertCapacity, type BacklogMonitor } from '../backlog.ts'
import { unavailable } from '../errors.ts'
import type { ByteBudget, ClaimResult, DeletedCheck, IdempotencyStore, RateLimit } from '../../shared/idempotency.ts'
import type { InFlightLimiter } from '../in-flight.ts'
import { claimLimited } from '../token-rate-limit.ts'
import { validIds } from './params.ts'

export interface PreflightDeps {
  authenticate: Authenticate
  backlog: BacklogMonitor
  backpressureRetryAfterS: number
  inFlight: InFlightLimiter
  /** Called after an accepted enqueue, before the 201 (gateway/replication.ts; a no-op unless REDIS_WAIT_REPLICAS). */
  confirmReplicated: ConfirmReplicated
}

/**
 * The onRequest hook of an ingest route. The cheap refusals come first and need no Redis round
 * trip (bad ids, backpressure from the poller's last figures); the DSN lookup is usually served
 * from the token cache. `takeContentType` runs first: any Content-Type is accepted (body.ts).
 */
export function ingestPreflight(
  deps: PreflightDeps,
  queue: QueueName,
  permission: Permission,
  takeContentType: (request: FastifyRequest) => void,
) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    takeContentType(request)
    // Every ingest route has these params (its schema says so); validIds checks each one's format.
    const params = validIds(request.params as { dsn: string } & Record<string, string>)
    assertCapacity(deps.backlog, queue, deps.backpressureRetryAfterS, request.log)
    request.ingest = await deps.authenticate(request, params.dsn, permission)
    deps.inFlight.acquire(request, reply, request.ingest.tokenId)
  }
}

/**
 * The answer for any upload of a deleted session (its session, logs or a photo): 409, which the
 * phone takes as done and drops, so the deleted data is neither stored again nor retried for ever
 * (README "Deletion").
 */
export const DELETED = { error: 'deleted', message: 'this test session was deleted' } as const

export interface ClaimRequest {
  idemKey: string
  /** The BullMQ job key: a claim whose job exists is a duplicate even if the key expired. */
  jobKey: string
  /** The workspace's tombstones and this upload's session: a deleted session is answered 409. */
  deleted: DeletedCheck
  sha256: string
  rateLimit?: RateLimit
  budget?: ByteBudget
  /** For the 503 while another upload holds the key, e.g. "this session". */
  what: string
}

/** Claims the key; refuses with 429 over a limit and 503 while a concurrent upload holds it. */
export async function claimOrRefuse(
  idempotency: IdempotencyStore,
  request: FastifyRequest,
  c: ClaimRequest,
): Promise<Extract<ClaimResult, { state: 'claimed' | 'dup' | 'deleted' }>> {
  const claim = await idempotency.claim(c.idemKey, c.jobKey, c.deleted, c.sha256, c.rateLimit, c.budget)
  if (claim.state === 'limited') throw claimLimited(request, request.ingest, claim)
  if (claim.state === 'busy') throw unavailable(`a concurrent upload of ${c.what}`)
  return claim
}

/** Runs the enqueue (for a photo, the staging upload too); if it fails, the claim is released (best effort) and the error goes on. */
export async function enqueueOrRelease(
  idempotency: IdempotencyStore,
  idemKey: string,
  token: () => string,
  enqueue: () => Promise<unknown>,
): Promise<void> {
  try {
    await enqueue()
  } catch (err) {
    await idempotency.release(idemKey, token()).catch(() => {})
    throw err
  }
}
