// BullMQ producers, sharing the gateway's fail-fast Redis connection. Closed before Redis.
import fp from 'fastify-plugin'
import { Queue } from 'bullmq'
// queue-settings.ts, not queues.ts: the gateway needs no payload schemas (and so no TypeBox).
import { QUEUE_NAMES, defaultJobOptions, type QueueName } from '../../shared/queue-settings.ts'

declare module 'fastify' {
  interface FastifyInstance {
    queues: Record<QueueName, Queue>
  }
}

export default fp<{ redisPrefix: string }>(
  async (app, opts) => {
    const queues = Object.fromEntries(
      QUEUE_NAMES.map((name) => [name, new Queue(name, { connection: app.redis, prefix: opts.redisPrefix, defaultJobOptions })]),
    ) as Record<QueueName, Queue>
    for (const q of Object.values(queues)) q.on('error', (err) => app.log.warn({ queue: q.name, err: err.message }, 'queue error'))
    app.decorate('queues', queues)
    // Fastify runs onClose hooks in reverse registration order, so this runs before Redis closes.
    app.addHook('onClose', async () => {
      await Promise.allSettled(Object.values(queues).map((q) => q.close()))
    })
  },
  { name: 'queues', dependencies: ['redis'] },
)
