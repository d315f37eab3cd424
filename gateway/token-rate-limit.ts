// The per-token rate limit (issue 4 §8). The check itself runs inside the idempotency claim
// script (idempotency.ts), so it costs no round trip; this file only says which key and limit a
// request is checked against, and how a refusal is answered: 429 with Retry-After, the one 4xx
// the device treats as "later" (DESIGN.md §2), logged with reason rate_limited.
import type { FastifyRequest } from 'fastify'
import { keys } from '../shared/keys.ts'
import type { IngestContext } from './auth.ts'
import { rateLimited, type HttpError } from './errors.ts'
import type { RateLimit } from './idempotency.ts'

/** The limit to pass to claim(); undefined when this token has none (0). */
export function tokenRateLimit(prefix: string, ctx: IngestContext): RateLimit | undefined {
  return ctx.rateLimitPerMinute > 0 ? { key: keys(prefix).tokenRate(ctx.tokenId), perMinute: ctx.rateLimitPerMinute } : undefined
}

export function tokenRateLimited(request: FastifyRequest, ctx: IngestContext, retryAfterMs: number): HttpError {
  request.log.info({ reason: 'rate_limited', limit: 'token', token_id: ctx.tokenId, per_minute: ctx.rateLimitPerMinute }, 'rate limited')
  return rateLimited('rate_limited', retryAfterMs)
}
