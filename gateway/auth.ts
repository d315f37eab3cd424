// DSN authentication: the token is the first path segment. The lookup never touches MongoDB
// (see token-cache.ts). Every refusal is a 403, with the reason logged (never the token).
import type { FastifyRequest } from 'fastify'
import type { Permission } from '../shared/token-registry.ts'
import { isValidId } from '../shared/ids.ts'
import { HttpError, unavailable } from './errors.ts'
import type { TokenCache } from './token-cache.ts'

export interface IngestContext {
  workspaceId: string
  tokenId: string
}

export function createAuthenticator(tokens: TokenCache) {
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
      request.log.info({ reason, token_id: entry?.id }, 'forbidden')
      throw new HttpError(403, 'forbidden', 'this DSN may not do that')
    }
    return { workspaceId: entry.workspace_id, tokenId: entry.id }
  }
}

export type Authenticate = ReturnType<typeof createAuthenticator>
