// The gateway's Redis clients: one for commands (fail fast: an error becomes 503) and one for
// the token-change subscription. Both close when the app closes, after the queues.
import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createProducerRedis, createSubscriberRedis, waitForReady } from '../../shared/redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    redis: Redis
    subscriber: Redis
  }
}

export default fp<{ url: string; connectWaitMs?: number }>(
  async (app, opts) => {
    const redis = createProducerRedis(opts.url)
    // Nothing on the request path waits on the subscriber: until it is subscribed, lookups are not cached.
    const subscriber = createSubscriberRedis(opts.url)
    for (const [name, client] of [
      ['redis', redis],
      ['subscriber', subscriber],
    ] as const) {
      client.on('error', (err: Error) => app.log.warn({ client: name, err: err.message }, 'redis connection error'))
    }
    // Give Redis a moment to connect so the first requests are not refused; if it is down,
    // start anyway and answer 503 until it is back (devices retry).
    await waitForReady(redis, opts.connectWaitMs)
    app.decorate('redis', redis)
    app.decorate('subscriber', subscriber)
    app.addHook('onClose', async () => {
      await Promise.allSettled([redis.quit(), subscriber.quit()])
      redis.disconnect()
      subscriber.disconnect()
    })
  },
  { name: 'redis' },
)
