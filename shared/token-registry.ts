// The token registry. MongoDB (`tokens`, `workspaces`) is the source of truth; Redis holds a
// mirror that gateways read, because the gateway must never query MongoDB on the request path.
// Every change is written to MongoDB first, then to the mirror, then announced on a pub/sub
// channel so that every gateway drops its cached copy at once (revocation within 1 s).
// Workers re-sync the whole mirror periodically, which repairs it after a lost write or a wiped Redis.
import { randomBytes } from 'node:crypto'
import type { RedisClient } from './redis.ts'
import type { Db } from 'mongodb'
import { keys } from './keys.ts'
import { collections, type TokenDoc, type WorkspaceDoc } from './mongo.ts'
import type { Permission } from './permissions.ts'

/** What a gateway needs to know about a token. Never contains the token or its hash. */
export interface TokenEntry {
  id: string
  workspace_id: string
  permissions: Permission[]
  expires_at: string | null
  revoked: boolean
  workspace_active: boolean
  /** The workspace's per-token rate limit (requests per minute, 0 = none); null or absent = the gateway's default. */
  rate_limit_per_minute?: number | null
  /** The workspace's Redis shard; absent = 0. */
  redis_shard?: number
  /** Version (ms): the newest change to the token or its workspace. An older version never overwrites a newer one. */
  v: number
}

// Defined in token-hash.ts, which the gateway imports directly (it must not load the MongoDB driver).
export { hashToken } from './token-hash.ts'

/** The token is a DSN path segment, so its alphabet is the id alphabet (base64url). */
export function generateToken(): string {
  return 'rdt_' + randomBytes(32).toString('base64url')
}

export function toEntry(
  token: TokenDoc,
  workspace: Pick<WorkspaceDoc, 'active' | 'updated_at' | 'rate_limit_per_minute' | 'redis_shard'> | null,
): TokenEntry {
  return {
    id: token._id,
    workspace_id: token.workspace_id,
    permissions: token.permissions,
    expires_at: token.expires_at ? token.expires_at.toISOString() : null,
    revoked: token.revoked_at != null,
    workspace_active: workspace?.active === true,
    // A workspace setting, carried by each token's entry so the gateway needs no second lookup.
    // Changing it bumps the workspace's updated_at, hence `v` below, like (de)activation does.
    rate_limit_per_minute: workspace?.rate_limit_per_minute ?? null,
    // Also a workspace setting carried by each entry; a move bumps updated_at like the others.
    redis_shard: workspace?.redis_shard ?? 0,
    v: Math.max((token.updated_at ?? token.created_at).getTime(), workspace?.updated_at?.getTime() ?? 0),
  }
}

// Writes an entry only if it is not older than the one in the mirror, and announces it. Without
// this, a periodic full sync that read MongoDB just before a revocation could write the old
// "active" entry back over the revoked one.
// KEYS[1] = mirror hash; ARGV[1] = channel; ARGV[2] = '1' to announce unchanged entries too;
// then (field, json, version) triples.
const WRITE_NEWER = `
local changed = 0
for i = 3, #ARGV, 3 do
  local field, json, v = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local cur = redis.call('HGET', KEYS[1], field)
  local curv = -1
  if cur then
    local ok, d = pcall(cjson.decode, cur)
    if ok and type(d) == 'table' and tonumber(d.v) then curv = tonumber(d.v) end
  end
  if cur ~= json and v >= curv then
    redis.call('HSET', KEYS[1], field, json)
    redis.call('PUBLISH', ARGV[1], field)
    changed = changed + 1
  elseif ARGV[2] == '1' then
    redis.call('PUBLISH', ARGV[1], field)
  end
end
return changed
`

async function writeNewer(
  redis: RedisClient,
  prefix: string,
  entries: [hash: string, entry: TokenEntry][],
  alwaysPublish: boolean,
): Promise<number> {
  const k = keys(prefix)
  let changed = 0
  // Chunks keep each script run short: Redis runs nothing else meanwhile.
  for (let i = 0; i < entries.length; i += 500) {
    const args = entries.slice(i, i + 500).flatMap(([hash, e]) => [hash, JSON.stringify(e), String(e.v)])
    changed += Number(await redis.eval(WRITE_NEWER, 1, k.tokens, k.tokensChannel, alwaysPublish ? '1' : '0', ...args))
  }
  return changed
}

/**
 * Writes entries (keyed by token hash) to the mirror after an admin action, and tells every
 * gateway to forget them, even when unchanged (a repeated revoke is a nudge worth sending).
 */
export async function publishEntries(redis: RedisClient, prefix: string, entries: Map<string, TokenEntry>): Promise<void> {
  if (entries.size > 0) await writeNewer(redis, prefix, [...entries], true)
}

/** Re-mirrors the tokens of one workspace (after the workspace itself changes, e.g. deactivation). */
export async function republishWorkspace(db: Db, redis: RedisClient, prefix: string, workspaceId: string): Promise<void> {
  const c = collections(db)
  const ws = await c.workspaces.findOne({ _id: workspaceId })
  const entries = new Map<string, TokenEntry>()
  for await (const t of c.tokens.find({ workspace_id: workspaceId })) entries.set(t.token_hash, toEntry(t, ws))
  await publishEntries(redis, prefix, entries)
}

/**
 * Rebuilds the whole mirror from MongoDB (workers run it at start and every 30 s). It repairs a
 * lost write or a wiped Redis, and never overwrites an entry newer than what it read.
 */
export async function syncTokenMirror(db: Db, redis: RedisClient, prefix: string): Promise<{ tokens: number; removed: number }> {
  const c = collections(db)
  const k = keys(prefix)
  const workspaces = new Map<string, WorkspaceDoc>()
  for await (const w of c.workspaces.find()) workspaces.set(w._id, w)
  const wanted = new Map<string, TokenEntry>()
  for await (const t of c.tokens.find()) wanted.set(t.token_hash, toEntry(t, workspaces.get(t.workspace_id) ?? null))

  await writeNewer(redis, prefix, [...wanted], false)
  // Tokens are never deleted by this service; a field with no token behind it is removed.
  const removed = (await redis.hkeys(k.tokens)).filter((h) => !wanted.has(h))
  const pipe = redis.multi()
  if (removed.length) pipe.hdel(k.tokens, ...removed)
  for (const h of removed) pipe.publish(k.tokensChannel, h)
  // Set last, so a gateway never takes a half-loaded mirror as authoritative.
  pipe.set(k.tokensSynced, new Date().toISOString())
  await pipe.exec()
  return { tokens: wanted.size, removed: removed.length }
}
