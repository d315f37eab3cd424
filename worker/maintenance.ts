// The worker-internal `maintenance` queue: scheduled work that must run once across all workers,
// not once per worker. Today that is the retention run (worker/processors/retention.ts).
//
// - Every worker that serves the queue upserts the same BullMQ job scheduler at start (idempotent:
//   one scheduler, whichever worker wrote it last), and the scheduler makes one job per interval.
// - The queue's global concurrency is 1, so two workers never run it at once, even when a run
//   lasts longer than the interval.
// - A worker that dies mid-run leaves the job locked; once its lock expires another worker runs
//   it again, and the run is idempotent. A failed run is not retried: the next one comes anyway.
import { Queue, Worker, type Job } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Client as S3Client } from 'minio'
import type { Db } from 'mongodb'
import type { Logger } from 'pino'
import type { WorkerConfig } from './config.ts'
import type { WorkerMetrics } from './metrics.ts'
import { describeError } from './mongo-errors.ts'
import { createRetentionProcessor } from './processors/retention.ts'
import { within } from './queue-workers.ts'

/** Persisted in Redis with every key of the queue (like the ingest queues' names, shared/queue-settings.ts). */
export const MAINTENANCE_QUEUE = 'maintenance'
const SCHEDULE_RETRY_MS = 10_000
/** The scheduler's id and its jobs' name; persisted in Redis too. */
export const RETENTION_SCHEDULER = 'retention'

export interface MaintenanceDeps {
  config: WorkerConfig
  logger: Logger
  redis: RedisClient
  db: Db
  s3: S3Client
  metrics?: WorkerMetrics
}

export interface Maintenance {
  worker: Worker
  queue: Queue
  close(): Promise<void>
}

export async function startMaintenance(deps: MaintenanceDeps): Promise<Maintenance> {
  const { config, logger } = deps
  const log = logger.child({ queue: MAINTENANCE_QUEUE })
  const queue = new Queue(MAINTENANCE_QUEUE, { connection: deps.redis, prefix: config.redisPrefix })
  const retention = createRetentionProcessor({ ...deps, logger: log, metrics: deps.metrics?.retention })
  const processor = async (job: Job, token?: string, signal?: AbortSignal) => {
    if (job.name === RETENTION_SCHEDULER) return retention(job, token, signal)
    // A job of a later version's schedule, seen by an older worker during a rolling upgrade: leave it be.
    log.warn({ name: job.name, jobId: job.id }, 'unknown maintenance job; ignored')
    return { outcome: 'ignored' }
  }
  const worker = new Worker(MAINTENANCE_QUEUE, processor, {
    connection: deps.redis,
    prefix: config.redisPrefix,
    concurrency: 1,
    lockDuration: config.workerLockMs,
    stalledInterval: config.workerStalledIntervalMs,
    // A run that keeps killing its worker (e.g. out of memory) must not loop for ever; the next scheduled run starts afresh.
    maxStalledCount: 2,
    autorun: false,
  })
  worker.on('failed', (job, err) => log.error({ jobId: job?.id, name: job?.name, err: describeError(err) }, 'maintenance job failed'))
  worker.on('error', (err) => log.warn({ err: describeError(err) }, 'maintenance worker error'))
  // Setting up the schedule writes to Redis. A worker started to drain a Redis at maxmemory (or
  // one that is away) must still start, because the ingest queues matter more than a retention run
  // (found by faults/maxmemory.faults.ts): a failed set-up is retried in the background until it
  // succeeds. Both writes are idempotent.
  let retry: NodeJS.Timeout | undefined
  let closing = false
  const schedule = async (): Promise<void> => {
    try {
      await queue.setGlobalConcurrency(1)
      await queue.upsertJobScheduler(
        RETENTION_SCHEDULER,
        { every: config.retentionIntervalMs },
        { name: RETENTION_SCHEDULER, data: {}, opts: { attempts: 1, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } },
      )
    } catch (err) {
      log.warn({ err: describeError(err) }, 'could not set up the retention schedule; retrying in 10 s')
      if (!closing) retry = setTimeout(() => void schedule(), SCHEDULE_RETRY_MS)
    }
  }
  await schedule()
  const loop = worker.run().catch((err: unknown) => log.error({ err: describeError(err) }, 'maintenance worker loop stopped with an error'))
  await worker.waitUntilReady()
  return {
    worker,
    queue,
    async close() {
      closing = true
      clearTimeout(retry)
      // A run stops at its next batch (it checks the signal); what it did not reach, the next run
      // does. Bounded like the ingest workers' close: with Redis away, BullMQ's close waits for a
      // connection that does not come back (found by faults/shutdown.faults.ts).
      const closed = Promise.all([worker.close(), loop])
      if (!(await within(5000, closed))) {
        worker.cancelAllJobs('worker shutting down')
        await within(2000, closed)
      }
      await queue.close()
    },
  }
}
