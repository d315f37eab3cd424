// The admin's Redis client: the token mirror (publishEntries) and the log-in rate limiter.
// Fail fast like the gateway's: an admin action whose mirror write fails still stands in MongoDB
// (a worker's periodic sync repairs the mirror), and a log-in with Redis down is refused (503).
import fp from 'fastify-plugin'
import type { RedisClient } from '../../shared/redis.ts'
import { createProducerRedis, waitForReady, type RedisTarget } from '../../shared/redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
  }
}

export default fp<{ target: RedisTarget; connectWaitMs?: number }>(
  async (app, opts) => {
    // A longer command timeout than the gateway's: a slow reply under load must not skip a mirror push.
    const redis = createProducerRedis(opts.target, { commandTimeout: 10_000 })
    redis.on('error', (err: Error) => app.log.warn({ err: err.message }, 'redis connection error'))
    await waitForReady(redis, opts.connectWaitMs)
    // A getter: Fastify's decorate() types a plain value of a union type (Redis | Cluster) as only its first member.
    app.decorate('redis', { getter: () => redis })
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => {})
      redis.disconnect()
    })
  },
  { name: 'redis' },
)
