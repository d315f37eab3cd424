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
    // No auto-pipelining, although it saves system calls (3.1 -> 1.0 writes per accepted session
    // for the gateway; Redis CPU per 409 19 -> 28 us). ioredis builds a Pipeline object for each
    // batch (copying every one of the client's ~100 script methods onto it) and ties each command
    // to it with closures; like the per-command closures that shared/redis-command-closures.ts
    // removes, they keep every request's data alive past the next scavenge. Measured in the
    // bench's T1 rounds, with those closures removed: 7,285 accepted/s without it, at most 6,022
    // with it, 6,738 before either change (bench/README.md, "The gateway's young generation").
    const redis = createProducerRedis(opts.target, { enableAutoPipelining: false })
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
