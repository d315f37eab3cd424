// Queue depth as a Prometheus gauge, read lazily when Prometheus scrapes (one BullMQ getJobCounts
// script per queue), so nothing polls Redis between scrapes. Gateway and worker both export it.
import type { Queue } from 'bullmq'
import { Gauge, type Registry } from 'prom-client'

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const

/** How long a scrape waits for Redis before it gives up on the figures (the worker's connection never fails fast). */
const COUNT_TIMEOUT_MS = 2000

export function registerQueueDepth(registry: Registry, queues: () => Queue[]): Gauge<'queue' | 'state'> {
  return new Gauge({
    name: 'rdt_queue_jobs',
    help: 'Jobs per BullMQ queue and state, read at scrape time (completed is capped by removeOnComplete)',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      let timer: NodeJS.Timeout | undefined
      try {
        const counts = await Promise.race([
          Promise.all(queues().map(async (q) => [q.name, await q.getJobCounts(...QUEUE_STATES)] as const)),
          new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('queue counts timed out')), COUNT_TIMEOUT_MS))),
        ])
        this.reset()
        // Summed over shards: a queue's depth is what its workers (and an autoscaler) care about.
        const sums = new Map<string, Record<string, number>>()
        for (const [queue, c] of counts) {
          const sum = sums.get(queue) ?? {}
          for (const state of QUEUE_STATES) sum[state] = (sum[state] ?? 0) + (c[state] ?? 0)
          sums.set(queue, sum)
        }
        for (const [queue, c] of sums) for (const state of QUEUE_STATES) this.set({ queue, state }, c[state] ?? 0)
      } catch {
        // Redis is away: report no figure rather than a stale one (absent series can be alerted on).
        this.reset()
      } finally {
        clearTimeout(timer)
      }
    },
  })
}
