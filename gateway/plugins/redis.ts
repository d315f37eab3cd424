// The gateway's Redis clients: one for commands (fail fast: an error becomes 503) and one for
// the token-change subscription. Both close when the app closes, after the queues.
import fp from 'fastify-plugin'
import type { RedisClient } from '../../shared/redis.ts'
import { createProducerRedis, createSubscriberRedis, waitForReady, type RedisTarget } from '../../shared/redis.ts'

declare module 'fastify' {
  interface FastifyInstance {
    redis: RedisClient
    subscriber: RedisClient
  }
}

export default fp<{ target: RedisTarget; connectWaitMs?: number }>(
  async (app, opts) => {
    // Auto-pipelining: the commands that concurrent requests issue in one turn of the event loop
    // go to Redis in one write (per cluster node), and Redis reads them in one go. Each command
    // keeps its own answer and error, so nothing changes for a request but the number of system
    // calls: measured in T1 rounds, 3.2 -> 1.2 writes per accepted session for the gateway, and
    // Redis CPU per accept down by a quarter (bench/README.md, "System calls per request").
    const redis = createProducerRedis(opts.target, { enableAutoPipelining: true })
    // Nothing on the request path waits on the subscriber: until it is subscribed, lookups are not cached.
    const subscriber = createSubscriberRedis(opts.target)
    for (const [name, client] of [
      ['redis', redis],
      ['subscriber', subscriber],
    ] as const) {
      client.on('error', (err: Error) => app.log.warn({ client: name, err: err.message }, 'redis connection error'))
    }
    // Give Redis a moment to connect so the first requests are not refused; if it is down,
    // start anyway and answer 503 until it is back (devices retry).
    await waitForReady(redis, opts.connectWaitMs)
    // A getter: Fastify's decorate() types a plain value of a union type (Redis | Cluster) as only its first member.
    app.decorate('redis', { getter: () => redis })
    app.decorate('subscriber', { getter: () => subscriber })
    app.addHook('onClose', async () => {
      await Promise.allSettled([redis.quit(), subscriber.quit()])
      redis.disconnect()
      subscriber.disconnect()
    })
  },
  { name: 'redis' },
)
