// Queue names and default job options: what a producer needs. Kept apart from the payload
// schemas in queues.ts (which re-exports all of this) so that the gateway, which only enqueues,
// does not load TypeBox and compile validators it never runs: measured, ~15 MB of idle RSS (bench T4).
//
// The queue names are persisted in Redis as part of every BullMQ key, so renaming one
// strands the jobs already queued under the old name: change them only with a migration.
import type { JobsOptions } from 'bullmq'

/** The ingest queues: the gateway produces these (and only these), the workers consume them. */
export const QUEUE_NAMES = ['sessions', 'logs', 'media'] as const
export type QueueName = (typeof QUEUE_NAMES)[number]

/**
 * Queues only workers use, produced and consumed by workers alone, so the gateway never opens them
 * and its Redis user has no right on them: `deliveries` (outbound webhooks) and `maintenance` (the
 * scheduled retention run, worker/maintenance.ts).
 */
export const WORKER_INTERNAL_QUEUE_NAMES = ['deliveries', 'maintenance'] as const
export type WorkerInternalQueueName = (typeof WORKER_INTERNAL_QUEUE_NAMES)[number]
/** Every queue a worker can serve (what WORKER_QUEUES may name). */
export const WORKER_QUEUE_NAMES = [...QUEUE_NAMES, ...WORKER_INTERNAL_QUEUE_NAMES] as const
export type WorkerQueueName = (typeof WORKER_QUEUE_NAMES)[number]

/**
 * The queues whose jobs are in every shard (a workspace's in its own), each served by one BullMQ
 * Worker per shard. `maintenance` is not one: it is a single queue under REDIS_PREFIX with a worker
 * of its own that runs one job at a time (worker/maintenance.ts).
 */
export type ShardedQueueName = Exclude<WorkerQueueName, 'maintenance'>

export function isIngestQueue(name: WorkerQueueName): name is QueueName {
  return (QUEUE_NAMES as readonly string[]).includes(name)
}

/**
 * Defaults for every job. Transient failures (a server down) retry with capped exponential
 * backoff and jitter for about a day; after that, and for permanent failures, the job stays in
 * the failed set for inspection and retry: it is never dropped.
 */
export const defaultJobOptions: JobsOptions = {
  attempts: 300,
  backoff: { type: 'capped-jitter', delay: 1000 },
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: false,
}

/** Capped exponential backoff with full jitter; BullMQ's built-in exponential has no cap. */
export function backoffDelay(attemptsMade: number, baseMs = 1000, capMs = 5 * 60_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attemptsMade, 20))
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2))
}
