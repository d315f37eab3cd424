// The token registry. MongoDB (`tokens`, `workspaces`) is the source of truth; Redis holds a
// mirror that gateways read, because the gateway must never query MongoDB on the request path.
// Every change is written to MongoDB first, then to the mirror, then announced on a pub/sub
// channel so that every gateway drops its cached copy at once (revocation within 1 s).
// Workers re-sync the whole mirror periodically, which repairs it after a lost write or a wiped Redis.
import { createHash, randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Db } from 'mongodb'
import { keys } from './keys.ts'
import { collections, type TokenDoc, type WorkspaceDoc } from './mongo.ts'

export const PERMISSIONS = ['test_session', 'logs', 'media'] as const
export type Permission = (typeof PERMISSIONS)[number]

/** What a gateway needs to know about a token. Never contains the token or its hash. */
export interface TokenEntry {
  id: string
  workspace_id: string
  permissions: Permission[]
  expires_at: string | null
  revoked: boolean
  workspace_active: boolean
}

/** Tokens are 256 random bits, so a plain SHA-256 is a safe, fast hash (no KDF needed). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** The token is a DSN path segment, so its alphabet is the id alphabet (base64url). */
export function generateToken(): string {
  return 'rdt_' + randomBytes(32).toString('base64url')
}

export function toEntry(token: TokenDoc, workspace: Pick<WorkspaceDoc, 'active'> | null): TokenEntry {
  return {
    id: token._id,
    workspace_id: token.workspace_id,
    permissions: token.permissions,
    expires_at: token.expires_at ? token.expires_at.toISOString() : null,
    revoked: token.revoked_at != null,
    workspace_active: workspace?.active === true,
  }
}

/** Writes entries (keyed by token hash) to the mirror and tells every gateway to forget them. */
export async function publishEntries(redis: Redis, prefix: string, entries: Map<string, TokenEntry>): Promise<void> {
  if (entries.size === 0) return
  const k = keys(prefix)
  const pipe = redis.multi()
  for (const [hash, entry] of entries) pipe.hset(k.tokens, hash, JSON.stringify(entry))
  for (const hash of entries.keys()) pipe.publish(k.tokensChannel, hash)
  await pipe.exec()
}

/** Re-mirrors the tokens of one workspace (after the workspace itself changes, e.g. deactivation). */
export async function republishWorkspace(db: Db, redis: Redis, prefix: string, workspaceId: string): Promise<void> {
  const c = collections(db)
  const ws = await c.workspaces.findOne({ _id: workspaceId })
  const entries = new Map<string, TokenEntry>()
  for await (const t of c.tokens.find({ workspace_id: workspaceId })) entries.set(t.token_hash, toEntry(t, ws))
  await publishEntries(redis, prefix, entries)
}

/**
 * Rebuilds the whole mirror from MongoDB. Entries are written before stale ones are removed and
 * the "synced" marker is set last, so a gateway never sees a half-loaded mirror as authoritative.
 */
export async function syncTokenMirror(db: Db, redis: Redis, prefix: string): Promise<{ tokens: number; removed: number }> {
  const c = collections(db)
  const k = keys(prefix)
  const workspaces = new Map<string, WorkspaceDoc>()
  for await (const w of c.workspaces.find()) workspaces.set(w._id, w)
  const wanted = new Map<string, string>()
  for await (const t of c.tokens.find()) wanted.set(t.token_hash, JSON.stringify(toEntry(t, workspaces.get(t.workspace_id) ?? null)))

  const current = await redis.hgetall(k.tokens)
  const changed: string[] = []
  const pipe = redis.multi()
  for (const [hash, json] of wanted) {
    if (current[hash] !== json) {
      pipe.hset(k.tokens, hash, json)
      changed.push(hash)
    }
  }
  const removed = Object.keys(current).filter((h) => !wanted.has(h))
  if (removed.length) pipe.hdel(k.tokens, ...removed)
  for (const h of [...changed, ...removed]) pipe.publish(k.tokensChannel, h)
  pipe.set(k.tokensSynced, new Date().toISOString())
  await pipe.exec()
  return { tokens: wanted.size, removed: removed.length }
}
