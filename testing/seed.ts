// Seeds a workspace and a token for the tests and the fault suite, without going through the CLI.
import { randomBytes } from 'node:crypto'
import type { TestConfig } from './config.ts'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import type { Permission } from '../shared/permissions.ts'
import { generateToken, hashToken, syncTokenMirror } from '../shared/token-registry.ts'
import { createWorkerRedis } from '../shared/redis.ts'

export interface SeededToken {
  token: string
  tokenId: string
  workspaceId: string
}

/**
 * Writes a workspace and a token straight into MongoDB and syncs the Redis mirror, the way the
 * CLI and the workers do, so gateway tests do not depend on the CLI.
 */
export async function seedToken(
  config: Pick<TestConfig, 'mongodbUrl' | 'redisUrl' | 'redisClusterNodes' | 'redisPrefix'>,
  opts: { permissions?: Permission[]; active?: boolean; expiresAt?: Date | null; slug?: string; shard?: number } = {},
): Promise<SeededToken> {
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  const redis = createWorkerRedis(config)
  try {
    await ensureIndexes(db)
    const c = collections(db)
    const workspaceId = 'w' + randomBytes(8).toString('hex')
    const tokenId = 't' + randomBytes(8).toString('hex')
    const token = generateToken()
    const now = new Date()
    await c.workspaces.insertOne({
      _id: workspaceId,
      slug: opts.slug ?? workspaceId,
      name: workspaceId,
      active: opts.active ?? true,
      created_at: now,
      updated_at: now,
      ...(opts.shard === undefined ? {} : { redis_shard: opts.shard }),
    })
    await c.tokens.insertOne({
      _id: tokenId,
      workspace_id: workspaceId,
      token_hash: hashToken(token),
      label: null,
      permissions: opts.permissions ?? ['test_session', 'logs', 'media'],
      created_at: now,
      expires_at: opts.expiresAt ?? null,
      revoked_at: null,
    })
    await syncTokenMirror(db, redis, config.redisPrefix)
    return { token, tokenId, workspaceId }
  } finally {
    redis.disconnect()
    await client.close()
  }
}
