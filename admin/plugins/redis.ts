// The admin's Redis client: the token mirror (publishEntries) and the log-in rate limiter.
// Fail fast like the gateway's: an admin action whose mirror write fails still stands in MongoDB
// (a worker's periodic sync repairs the mirror), and a log-in with Redis down is refused (503).
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createProducerRedis, waitForReady } from '../../shared/redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
  }
}

export default fp<{ url: string; connectWaitMs?: number }>(
  async (app, opts) => {
    // A longer command timeout than the gateway's: a slow reply under load must not skip a mirror push.
    const redis = createProducerRedis(opts.url, { commandTimeout: 10_000 })
    redis.on('error', (err: Error) => app.log.warn({ err: err.message }, 'redis connection error'))
    await waitForReady(redis, opts.connectWaitMs)
    app.decorate('redis', redis)
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => {})
      redis.disconnect()
    })
  },
  { name: 'redis' },
)
