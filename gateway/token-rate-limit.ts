// The per-token rate limit and the per-workspace byte budget. Both
// checks run inside the idempotency claim script (shared/idempotency.ts), so they cost no round trip;
// this file only says which keys and limits a request is checked against, and how a refusal is
// answered: 429 with Retry-After, the one 4xx the device treats as "later" (docs/architecture.md §1),
// logged with reason rate_limited.
import type { FastifyRequest } from 'fastify'
import type { IngestContext } from './auth.ts'
import { rateLimited, type HttpError } from './errors.ts'
import type { ByteBudget, ClaimResult, RateLimit } from '../shared/idempotency.ts'

/** The limit to pass to claim(); undefined when this token has none (0). */
export function tokenRateLimit(ctx: IngestContext): RateLimit | undefined {
  return ctx.rateLimitPerMinute > 0 ? { key: ctx.shard.keys.tokenRate(ctx.tokenId), perMinute: ctx.rateLimitPerMinute } : undefined
}

/** The byte budget to pass to claim() for a body of `bytes`; undefined when the budget is off (0). */
export function workspaceByteBudget(ctx: IngestContext, bytesPerMinute: number, bytes: number): ByteBudget | undefined {
  return bytesPerMinute > 0 ? { key: ctx.shard.keys.workspaceBytes(ctx.workspaceId), bytesPerMinute, bytes } : undefined
}

/** The 429 for a claim refused by one of the limits. */
export function claimLimited(request: FastifyRequest, ctx: IngestContext, claim: Extract<ClaimResult, { state: 'limited' }>): HttpError {
  if (claim.limit === 'bytes') {
    request.log.info(
      { reason: 'rate_limited', limit: 'workspace_bytes', token_id: ctx.tokenId, workspace_id: ctx.workspaceId },
      'rate limited',
    )
    return rateLimited('byte_budget_exceeded', claim.retryAfterMs)
  }
  return tokenRateLimited(request, ctx, claim.retryAfterMs)
}

export function tokenRateLimited(request: FastifyRequest, ctx: IngestContext, retryAfterMs: number): HttpError {
  request.log.info({ reason: 'rate_limited', limit: 'token', token_id: ctx.tokenId, per_minute: ctx.rateLimitPerMinute }, 'rate limited')
  return rateLimited('rate_limited', retryAfterMs)
}
