// A workspace and many tokens for the load, written the way the CLI writes them (MongoDB first,
// then the Redis mirror). Thousands of phones upload at once in the field, each at a modest rate,
// so the load is spread over many tokens and the per-token rate limit stays at its default.
import { randomBytes } from 'node:crypto'
import type { Db } from 'mongodb'
import { collections, ensureIndexes } from '../shared/mongo.ts'
import type { RedisClient } from '../shared/redis.ts'
import { generateToken, hashToken, syncTokenMirror } from '../shared/token-registry.ts'

export interface Seeded {
  workspaceId: string
  tokens: string[]
  /** The tokens' ids, in the same order (what `token revoke` takes). */
  tokenIds: string[]
}

/**
 * `shard`: the workspace's Redis shard (shared/redis-shards.ts), as `workspace create` places it;
 * left out, the field is absent, as on a deployment that never had shards (shard 0).
 */
export async function seedTokens(db: Db, redis: RedisClient, prefix: string, count: number, o: { shard?: number } = {}): Promise<Seeded> {
  await ensureIndexes(db)
  const c = collections(db)
  const workspaceId = 'w' + randomBytes(8).toString('hex')
  const now = new Date()
  await c.workspaces.insertOne({
    _id: workspaceId,
    slug: `bench-${workspaceId}`,
    name: 'bench',
    active: true,
    created_at: now,
    updated_at: now,
    ...(o.shard === undefined ? {} : { redis_shard: o.shard }),
  })
  const tokens = Array.from({ length: count }, () => generateToken())
  const tokenIds = tokens.map(() => 't' + randomBytes(8).toString('hex'))
  await c.tokens.insertMany(
    tokens.map((token, i) => ({
      _id: tokenIds[i]!,
      workspace_id: workspaceId,
      token_hash: hashToken(token),
      label: 'bench',
      permissions: ['test_session', 'logs', 'media'] as ('test_session' | 'logs' | 'media')[],
      created_at: now,
      updated_at: now,
      expires_at: null,
      revoked_at: null,
    })),
  )
  await syncTokenMirror(db, redis, prefix)
  return { workspaceId, tokens, tokenIds }
}
