// The BullMQ Workers of one process: one per queue it serves and shard it consumes, with failure
// accounting, and the bounded close that waits for running jobs and cancels them at a deadline.
import { UnrecoverableError, Worker, type Job } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Logger } from 'pino'
import type { WorkerConfig } from './config.ts'
import { backoffDelay, type ShardedQueueName } from '../shared/queue-settings.ts'
import { DELIVERY_BACKOFF_TYPE, deliveryDelay } from '../webhooks/retry-schedule.ts'
import type { BatchWriter } from './batch-writer.ts'
import type { WorkerMetrics } from './metrics.ts'
import { describeError } from './mongo-errors.ts'

export type Processor = (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>

export interface QueueWorkersDeps {
  config: WorkerConfig
  logger: Logger
  redis: RedisClient
  metrics?: WorkerMetrics
}

/** One shard this process consumes: its key prefix, and a processor per queue bound to that prefix. */
export interface ShardProcessors {
  shard: number
  prefix: string
  processors: Map<ShardedQueueName, Processor>
}

/**
 * Starts one Worker per queue and shard (`workers` lists each queue's in shard order); `failures`
 * counts failed jobs per queue, as final or retried.
 */
export function startQueueWorkers(deps: QueueWorkersDeps, shards: ShardProcessors[]) {
  const failures = { permanent: {} as Record<string, number>, retried: {} as Record<string, number> }
  const workers = new Map<ShardedQueueName, Worker[]>()
  const loops: Promise<void>[] = []
  for (const { shard, prefix, processors } of shards) {
    for (const [queue, processor] of processors) {
      const worker = startWorker(deps, queue, shard, prefix, processor, failures)
      workers.set(queue, [...(workers.get(queue) ?? []), worker])
      loops.push(
        worker.run().catch((err: unknown) => {
          deps.logger.error({ queue, shard, err: describeError(err) }, 'worker loop stopped with an error')
        }),
      )
    }
  }
  return { workers, loops, failures }
}

function startWorker(
  deps: QueueWorkersDeps,
  queue: ShardedQueueName,
  shard: number,
  prefix: string,
  processor: Processor,
  failures: { permanent: Record<string, number>; retried: Record<string, number> },
): Worker {
  const { config, logger } = deps
  const worker = new Worker(queue, deps.metrics ? deps.metrics.wrap(queue, processor) : processor, {
    connection: deps.redis,
    prefix,
    concurrency: config.workerConcurrency[queue],
    // A dead worker's jobs run again after the lock expires (see WorkerConfig.workerLockMs).
    lockDuration: config.workerLockMs,
    stalledInterval: config.workerStalledIntervalMs,
    // BullMQ's default (1) fails a job for good the second time its worker dies under it; two
    // crashes in a row (an OOM loop, a bad node) must not park accepted data in the failed set.
    maxStalledCount: 10,
    // Deliveries have their own schedule (about 3 days, webhooks/retry-schedule.ts); everything else the ingest one.
    settings: {
      backoffStrategy: (attemptsMade: number, type?: string) =>
        type === DELIVERY_BACKOFF_TYPE ? deliveryDelay(attemptsMade, deps.config.webhooks) : backoffDelay(attemptsMade),
    },
    // Started below, so that close() can wait for the main loop itself: Worker.close()
    // returns before the loop has stopped using the shared Redis connection.
    autorun: false,
  })
  worker.on('failed', (job, err) => {
    if (!job) return
    const final = err instanceof UnrecoverableError || err?.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1)
    const reason = describeError(err)
    deps.metrics?.failed(queue, final ? 'permanent' : 'transient')
    const counts = final ? failures.permanent : failures.retried
    counts[queue] = (counts[queue] ?? 0) + 1
    if (final) logger.error({ queue, shard, jobId: job.id, attempts: job.attemptsMade, reason }, 'job failed permanently')
    else logger.warn({ queue, shard, jobId: job.id, attempts: job.attemptsMade, reason }, 'job failed; will retry')
  })
  worker.on('error', (err) => logger.warn({ queue, shard, err: describeError(err) }, 'worker error'))
  worker.on('stalled', (jobId) => logger.warn({ queue, shard, jobId }, 'job stalled; it will run again'))
  return worker
}

/** Resolves with true if `work` settled within `ms`, false otherwise. */
export async function within(ms: number, work: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  const done = await Promise.race([work.then(() => true as const), timedOut])
  clearTimeout(timer)
  return done
}

/**
 * Closes the workers, letting running jobs finish for up to `deadlineMs`, then flushes the batch
 * writers: anything still batched has a job waiting on it, so it is sent before the clients go.
 */
export async function closeQueueWorkers(
  started: ReturnType<typeof startQueueWorkers>,
  writers: BatchWriter[],
  deadlineMs: number,
  logger: Logger,
): Promise<void> {
  const all = [...started.workers.values()].flat()
  const closed = () => Promise.all([...all.map((w) => w.close()), ...started.loops])
  if (!(await within(deadlineMs, closed()))) {
    // BullMQ memoises the first close(), so close(true) cannot cut it short. Cancel the running
    // jobs instead: processors stop at their next step boundary and the jobs are retried later
    // (on this or another worker), which is safe because every step is idempotent. Give them a
    // moment to stop, then close the clients regardless.
    logger.warn({ deadlineMs }, 'jobs still running at the close deadline; cancelling them')
    for (const w of all) w.cancelAllJobs('worker shutting down')
    await Promise.all(writers.map((w) => w.close()))
    await within(2000, closed())
  }
  await Promise.all(writers.map((w) => w.close()))
}
