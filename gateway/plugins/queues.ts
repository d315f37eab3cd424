// BullMQ producers, sharing the gateway's fail-fast Redis connection: the three queues of every
// shard (shared/redis-shards.ts). Closed before Redis.
import fp from 'fastify-plugin'
import { Queue } from 'bullmq'
// queue-settings.ts, not queues.ts: the gateway needs no payload schemas (and so no TypeBox).
import { QUEUE_NAMES, defaultJobOptions, type QueueName } from '../../shared/queue-settings.ts'
import { keys } from '../../shared/keys.ts'
import { shardPrefixes } from '../../shared/redis-shards.ts'

/** One shard's keys and queues: everything a request of one of its workspaces touches. */
export interface Shard {
  index: number
  prefix: string
  keys: ReturnType<typeof keys>
  queues: Record<QueueName, Queue>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Indexed by shard number. */
    shards: Shard[]
  }
}

export default fp<{ redisPrefix: string; redisShards: number }>(
  async (app, opts) => {
    const shards = shardPrefixes(opts.redisPrefix, opts.redisShards).map((prefix, index) => ({
      index,
      prefix,
      keys: keys(prefix),
      queues: Object.fromEntries(
        QUEUE_NAMES.map((name) => [name, new Queue(name, { connection: app.redis, prefix, defaultJobOptions })]),
      ) as Record<QueueName, Queue>,
    }))
    const all = shards.flatMap((s) => Object.values(s.queues))
    for (const q of all) q.on('error', (err) => app.log.warn({ queue: q.name, err: err.message }, 'queue error'))
    app.decorate('shards', shards)
    // Fastify runs onClose hooks in reverse registration order, so this runs before Redis closes.
    app.addHook('onClose', async () => {
      await Promise.allSettled(all.map((q) => q.close()))
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)
