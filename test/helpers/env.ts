// Test isolation: every test file gets its own Redis key prefix (so its own queues and
// idempotency keys) and its own MongoDB database, on the one real local stack.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { loadConfig, type Config } from '../../shared/config.ts'
import { collections, connectMongo, ensureIndexes } from '../../shared/mongo.ts'
import { generateToken, hashToken, syncTokenMirror, type Permission } from '../../shared/token-registry.ts'

export function testConfig(overrides: Record<string, string> = {}): Config {
  const id = randomBytes(5).toString('hex')
  const mongo = new URL(process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27017/rdt')
  mongo.pathname = `/t_${id}`
  return loadConfig(
    { ...process.env, REDIS_PREFIX: `{t${id}}`, MONGODB_URL: mongo.toString(), LOG_LEVEL: 'warn', ...overrides },
    {},
  )
}

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
  config: Config,
  opts: { permissions?: Permission[]; active?: boolean; expiresAt?: Date | null; slug?: string } = {},
): Promise<SeededToken> {
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  const redis = new Redis(config.redisUrl)
  try {
    await ensureIndexes(db)
    const c = collections(db)
    const workspaceId = 'w' + randomBytes(8).toString('hex')
    const tokenId = 't' + randomBytes(8).toString('hex')
    const token = generateToken()
    const now = new Date()
    await c.workspaces.insertOne({ _id: workspaceId, slug: opts.slug ?? workspaceId, name: workspaceId, active: opts.active ?? true, created_at: now, updated_at: now })
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

/** Polls until `fn` returns a truthy value, or fails after the deadline. Never a fixed sleep. */
export async function waitFor<T>(fn: () => Promise<T> | T, { timeoutMs = 15_000, intervalMs = 50, what = 'condition' } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

// Copies of ../shared/fixtures (bodies shaped like the real RDToolkit client's), kept in the repo.
export const fixturesDir = new URL('../fixtures/', import.meta.url)
