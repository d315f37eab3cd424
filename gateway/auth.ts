// DSN authentication: the token is the first path segment. The lookup never touches MongoDB
// (see token-cache.ts). Every refusal is a 403, with the reason logged (never the token), except
// an unknown token from a client address that sent too many of them: that gets 429
// (unknown-token-limit.ts). A valid token is never refused because of its address.
import type { FastifyRequest } from 'fastify'
import type { Permission } from '../shared/permissions.ts'
import { isValidId } from '../shared/ids.ts'
import { HttpError, rateLimited, unavailable } from './errors.ts'
import type { TokenCache } from './token-cache.ts'
import type { Shard } from './plugins/queues.ts'
import { addressKey, type UnknownTokenLimiter } from './unknown-token-limit.ts'

export interface IngestContext {
  workspaceId: string
  tokenId: string
  /** This token's rate limit (requests per minute, 0 = none): its workspace's setting, or the gateway default. */
  rateLimitPerMinute: number
  /** The workspace's shard: every key and queue the request touches is under its prefix. */
  shard: Shard
}

export interface AuthOptions {
  /** Every shard, by number (REDIS_SHARDS of them). */
  shards: Shard[]
  /** RATE_LIMIT_PER_MINUTE, for tokens whose workspace sets no limit of its own. */
  defaultRateLimitPerMinute?: number
  unknownTokens?: UnknownTokenLimiter
}

export function createAuthenticator(tokens: TokenCache, opts: AuthOptions) {
  return async function authenticate(request: FastifyRequest, dsn: string, permission: Permission): Promise<IngestContext> {
    // A malformed token cannot exist, so it is refused without a lookup.
    const entry = isValidId(dsn) ? await tokens.lookup(dsn) : null
    if (entry === 'not-synced') throw unavailable('token registry')
    let reason: string | null = null
    if (!entry) reason = 'unknown_token'
    else if (entry.revoked) reason = 'revoked_token'
    else if (entry.expires_at && Date.parse(entry.expires_at) <= Date.now()) reason = 'expired_token'
    else if (!entry.workspace_active) reason = 'inactive_workspace'
    else if (!entry.permissions.includes(permission)) reason = 'missing_permission'
    if (reason || !entry) {
      if (reason === 'unknown_token' && opts.unknownTokens) {
        // An address already known to be over is answered from memory. Otherwise the guess is
        // counted; if Redis cannot count it, the answer stays a plain 403 (a refusal is not
        // turned into a 503).
        const blockedMs = opts.unknownTokens.blockedFor(request.ip)
        const waitMs = blockedMs > 0 ? blockedMs : await opts.unknownTokens.record(request.ip).catch(() => 0)
        if (waitMs > 0) {
          request.log.info({ reason: 'rate_limited', limit: 'unknown_token_ip', ip: addressKey(request.ip) }, 'rate limited')
          throw rateLimited('ip_rate_limited', waitMs)
        }
      }
      request.log.info({ reason, token_id: entry?.id }, 'forbidden')
      throw new HttpError(403, 'forbidden', 'this DSN may not do that')
    }
    const own = entry.rate_limit_per_minute
    const rateLimitPerMinute = typeof own === 'number' && own >= 0 ? own : (opts.defaultRateLimitPerMinute ?? 0)
    const shard = opts.shards[entry.redis_shard ?? 0]
    if (!shard) {
      // REDIS_SHARDS is lower than a shard in use: refusing with 503 keeps the device retrying
      // until the operator fixes the setting, and queues nothing where no worker would look.
      request.log.error({ token_id: entry.id, shard: entry.redis_shard, shards: opts.shards.length }, 'workspace shard beyond REDIS_SHARDS')
      throw unavailable('redis shard')
    }
    return { workspaceId: entry.workspace_id, tokenId: entry.id, rateLimitPerMinute, shard }
  }
}

export type Authenticate = ReturnType<typeof createAuthenticator>
