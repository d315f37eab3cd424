// Worker metrics for Prometheus: job durations by queue and outcome, failures (permanent or
// transient), insertMany batch sizes and times, and queue depth. server.ts serves the registry
// on METRICS_PORT (shared/metrics-server.ts); buildWorker feeds it through the hooks below.
import { Queue, type Job } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import { Counter, Histogram, Registry } from 'prom-client'
import type { WorkerQueueName } from '../shared/queue-settings.ts'
import { registerQueueDepth } from '../shared/queue-metrics.ts'
import { createRetentionMetrics, type RetentionMetrics } from './retention-metrics.ts'

type Processor = (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>

/** Outcomes our processors return are a small fixed set; anything else is folded so labels stay bounded. */
const OUTCOME = /^[a-z_]{1,32}$/

export type FailureKind = 'permanent' | 'transient'

export interface WorkerMetrics {
  registry: Registry
  /** Wraps a processor so that each run is timed and labelled with its outcome. */
  wrap(queue: WorkerQueueName, processor: Processor): Processor
  /** Counts a failed attempt: 'permanent' stays in the failed set, 'transient' will be retried. */
  failed(queue: WorkerQueueName, kind: FailureKind): void
  /** The batch writer's hook for one collection: documents per insertMany and its duration. */
  batchObserver(collection: string): (documents: number, seconds: number) => void
  /** Exports the depth of these queues, read at scrape time on the worker's connection. */
  watchQueues(redis: RedisClient, prefixes: string[], queues: WorkerQueueName[]): { close(): Promise<void> }
  /** The retention run's progress (worker/retention-metrics.ts). */
  retention: RetentionMetrics
}

export function createWorkerMetrics(registry = new Registry()): WorkerMetrics {
  const duration = new Histogram({
    name: 'rdt_worker_job_duration_seconds',
    help: 'Time a job spent in its processor, by queue and outcome (stored, replay, conflict, ..., failed)',
    labelNames: ['queue', 'outcome'],
    // Jobs wait up to the batch writer's few milliseconds; media jobs copy megabytes.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  })
  const failures = new Counter({
    name: 'rdt_worker_job_failures_total',
    help: 'Failed job attempts by queue and kind: permanent (kept in the failed set) or transient (retried with backoff)',
    labelNames: ['queue', 'kind'],
    registers: [registry],
  })
  const batchDocuments = new Histogram({
    name: 'rdt_worker_batch_documents',
    help: 'Documents per insertMany, by collection (micro-batching of concurrent jobs)',
    labelNames: ['collection'],
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
    registers: [registry],
  })
  const batchSeconds = new Histogram({
    name: 'rdt_worker_batch_write_duration_seconds',
    help: 'Time from sending an insertMany to its acknowledgement, by collection',
    labelNames: ['collection'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  })

  return {
    registry,
    retention: createRetentionMetrics(registry),
    wrap(queue, processor) {
      return async (job, token, signal) => {
        const end = duration.startTimer({ queue })
        try {
          const result = await processor(job, token, signal)
          const outcome = (result as { outcome?: unknown } | null | undefined)?.outcome
          end({ outcome: typeof outcome === 'string' && OUTCOME.test(outcome) ? outcome : 'completed' })
          return result
        } catch (err) {
          end({ outcome: 'failed' })
          throw err
        }
      }
    },
    failed(queue, kind) {
      failures.inc({ queue, kind })
    },
    batchObserver(collection) {
      const docs = batchDocuments.labels(collection)
      const secs = batchSeconds.labels(collection)
      return (documents, seconds) => {
        docs.observe(documents)
        secs.observe(seconds)
      }
    },
    watchQueues(redis, prefixes, names) {
      // Queue objects on the worker's own connection; closing them leaves the connection open.
      // Every shard's: the gauge sums them, so an autoscaler sees each queue's whole depth.
      const queues = prefixes.flatMap((prefix) => names.map((name) => new Queue(name, { connection: redis, prefix })))
      registerQueueDepth(registry, () => queues)
      return { close: async () => void (await Promise.allSettled(queues.map((q) => q.close()))) }
    },
  }
}
