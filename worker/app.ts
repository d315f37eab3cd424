// buildWorker(deps) connects the clients and starts one BullMQ Worker per configured queue,
// the token-mirror sync and the staging sweeper; server.ts only reads config and handles signals.
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Client as S3Client } from 'minio'
import type { Db, MongoClient } from 'mongodb'
import type { Logger } from 'pino'
import type { Config } from '../shared/config.ts'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { backoffDelay, QUEUE_NAMES, type QueueName } from '../shared/queue-settings.ts'
import { assertNoEviction, createWorkerRedis, quitOrDisconnect } from '../shared/redis.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { syncTokenMirror } from '../shared/token-registry.ts'
import { createBatchWriter, type BatchWriter } from './batch-writer.ts'
import type { WorkerMetrics } from './metrics.ts'
import type { ProcessorDeps, Writers } from './context.ts'
import { describeError } from './mongo-errors.ts'
import { createLogsProcessor } from './processors/logs.ts'
import { createMediaProcessor } from './processors/media.ts'
import { createSessionsProcessor } from './processors/sessions.ts'
import { createSweeper } from './sweeper.ts'

type Processor = (job: Job, token?: string, signal?: AbortSignal) => Promise<unknown>

/** One processor factory per queue; a configured queue without one refuses to start. */
export const PROCESSORS: Record<QueueName, (deps: ProcessorDeps) => Processor> = {
  sessions: createSessionsProcessor,
  logs: createLogsProcessor,
  media: createMediaProcessor,
}

export const TOKEN_SYNC_INTERVAL_MS = 30_000
/** How long close() lets running jobs finish before it stops waiting for them. */
export const CLOSE_DEADLINE_MS = 10_000

export interface WorkerDeps {
  config: Config
  logger: Logger
  /** A Redis connection to use (it is not closed by close()); by default one is created. */
  redis?: Redis
  /** Overrides for tests, e.g. a shorter close deadline. */
  closeDeadlineMs?: number
  tokenSyncIntervalMs?: number
  /** Prometheus hooks (worker/metrics.ts): job durations, failures, batch sizes. */
  metrics?: WorkerMetrics
}

export interface WorkerApp {
  workers: Map<QueueName, Worker>
  /** The processor functions the workers run (tests call them directly to simulate a re-run). */
  processors: Map<QueueName, Processor>
  /** The staging sweeper, when this process serves the media queue. */
  sweeper: ReturnType<typeof createSweeper> | null
  db: Db
  s3: S3Client
  redis: Redis
  stats(): {
    permanentFailures: Record<string, number>
    retriedFailures: Record<string, number>
    /** Per collection: insertMany calls, documents sent, batches retried one document at a time. */
    writes: Record<keyof Writers, BatchWriter['stats']>
  }
  close(): Promise<void>
}

export class WorkerConfigError extends Error {
  override name = 'WorkerConfigError'
}

/** Refuses unknown queue names and queues without a processor, before anything connects. */
export function checkQueues(queues: string[]): QueueName[] {
  if (queues.length === 0) throw new WorkerConfigError('WORKER_QUEUES names no queue')
  for (const q of queues) {
    if (!(QUEUE_NAMES as readonly string[]).includes(q)) throw new WorkerConfigError(`WORKER_QUEUES: unknown queue "${q}" (known: ${QUEUE_NAMES.join(', ')})`)
    if (!PROCESSORS[q as QueueName]) throw new WorkerConfigError(`WORKER_QUEUES: queue "${q}" has no processor`)
  }
  return [...new Set(queues)] as QueueName[]
}

export async function buildWorker(deps: WorkerDeps): Promise<WorkerApp> {
  const { config, logger } = deps
  const queues = checkQueues(config.workerQueues)
  const closers: { name: string; fn: () => Promise<unknown> }[] = []
  const closeAll = async () => {
    // Reverse order of opening: workers first, then the sweeper and timers, then the clients.
    for (const c of closers.reverse().splice(0)) {
      const started = Date.now()
      try {
        await c.fn()
        logger.debug({ what: c.name, ms: Date.now() - started }, 'closed')
      } catch (err) {
        logger.warn({ what: c.name, err: describeError(err) }, 'error while closing')
      }
    }
  }

  try {
    const redis = deps.redis ?? createWorkerRedis(config.redisUrl)
    if (!deps.redis) {
      let lastLogged = 0
      redis.on('error', (err: Error) => {
        // ioredis reconnects by itself; log at most every 10 s while Redis is away.
        if (Date.now() - lastLogged > 10_000) {
          lastLogged = Date.now()
          logger.warn({ err: err.message }, 'redis connection error')
        }
      })
      closers.push({ name: 'redis', fn: () => quitOrDisconnect(redis) })
    }
    await assertNoEviction(redis)

    const { client: mongo, db } = await connectMongo(config.mongodbUrl, config.mongoWriteConcern)
    closers.push({ name: 'mongodb', fn: () => (mongo as MongoClient).close() })
    await ensureIndexes(db)

    const s3 = createS3(config.s3)
    await ensureBucket(s3, config.s3.bucket, config.s3.region)

    const c = collections(db)
    const batch = (collection: string) => ({ maxItems: 100, maxWaitMs: 5, onBatch: deps.metrics?.batchObserver(collection) })
    const writers: Writers = {
      sessions: createBatchWriter(c.sessions, batch('test_sessions')),
      conflicts: createBatchWriter(c.conflicts, batch('test_session_conflicts')),
      logs: createBatchWriter(c.logs, batch('test_session_logs')),
      logBatches: createBatchWriter(c.logBatches, batch('test_session_log_batches')),
      media: createBatchWriter(c.media, batch('test_session_media')),
    }
    const processorDeps: ProcessorDeps = { config, logger, redis, db, s3, writers }

    // Token mirror: repairs the gateways' Redis copy after a lost write or a wiped Redis.
    const syncTokens = async () => {
      try {
        await syncTokenMirror(db, redis, config.redisPrefix)
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'token mirror sync failed; will retry')
      }
    }
    await syncTokens()
    const tokenTimer = setInterval(() => void syncTokens(), deps.tokenSyncIntervalMs ?? TOKEN_SYNC_INTERVAL_MS)
    tokenTimer.unref()
    closers.push({ name: 'token sync', fn: async () => clearInterval(tokenTimer) })

    let sweeper: WorkerApp['sweeper'] = null
    if (queues.includes('media')) {
      const mediaQueue = new Queue('media', { connection: redis, prefix: config.redisPrefix })
      closers.push({ name: 'media queue', fn: () => mediaQueue.close() })
      sweeper = createSweeper({ s3, bucket: config.s3.bucket, queue: mediaQueue, logger, graceMs: config.stagingGraceMs, intervalMs: config.sweepIntervalMs })
      sweeper.start()
      const s = sweeper
      closers.push({ name: 'sweeper', fn: () => s.stop() })
    }

    const permanentFailures: Record<string, number> = {}
    const retriedFailures: Record<string, number> = {}
    const workers = new Map<QueueName, Worker>()
    const processors = new Map<QueueName, Processor>()
    const loops: Promise<void>[] = []
    for (const queue of queues) {
      const processor = PROCESSORS[queue](processorDeps)
      processors.set(queue, processor)
      const worker = new Worker(queue, deps.metrics ? deps.metrics.wrap(queue, processor) : processor, {
        connection: redis,
        prefix: config.redisPrefix,
        concurrency: config.workerConcurrency[queue],
        // A dead worker's jobs run again after the lock expires (see Config.workerLockMs).
        lockDuration: config.workerLockMs,
        stalledInterval: config.workerStalledIntervalMs,
        // BullMQ's default (1) fails a job for good the second time its worker dies under it; two
        // crashes in a row (an OOM loop, a bad node) must not park accepted data in the failed set.
        maxStalledCount: 10,
        settings: { backoffStrategy: (attemptsMade: number) => backoffDelay(attemptsMade) },
        // Started below, so that close() can wait for the main loop itself: Worker.close()
        // returns before the loop has stopped using the shared Redis connection.
        autorun: false,
      })
      worker.on('failed', (job, err) => {
        if (!job) return
        const final = err instanceof UnrecoverableError || err?.name === 'UnrecoverableError' || job.attemptsMade >= (job.opts.attempts ?? 1)
        const reason = describeError(err)
        deps.metrics?.failed(queue, final ? 'permanent' : 'transient')
        if (final) {
          permanentFailures[queue] = (permanentFailures[queue] ?? 0) + 1
          logger.error({ queue, jobId: job.id, attempts: job.attemptsMade, reason }, 'job failed permanently')
        } else {
          retriedFailures[queue] = (retriedFailures[queue] ?? 0) + 1
          logger.warn({ queue, jobId: job.id, attempts: job.attemptsMade, reason }, 'job failed; will retry')
        }
      })
      worker.on('error', (err) => logger.warn({ queue, err: describeError(err) }, 'worker error'))
      worker.on('stalled', (jobId) => logger.warn({ queue, jobId }, 'job stalled; it will run again'))
      workers.set(queue, worker)
      loops.push(
        worker.run().catch((err: unknown) => {
          logger.error({ queue, err: describeError(err) }, 'worker loop stopped with an error')
        }),
      )
    }
    const deadline = deps.closeDeadlineMs ?? CLOSE_DEADLINE_MS
    closers.push({
      name: 'workers',
      fn: async () => {
        const all = [...workers.values()]
        let timer: NodeJS.Timeout | undefined
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), deadline)))
        const res = await Promise.race([Promise.all([...all.map((w) => w.close()), ...loops]).then(() => 'closed' as const), timedOut])
        clearTimeout(timer)
        if (res === 'timeout') {
          // BullMQ memoises the first close(), so close(true) cannot cut it short. Cancel the
          // running jobs instead: processors stop at their next step boundary and the jobs are
          // retried later (on this or another worker), which is safe because every step is
          // idempotent. Give them a moment to stop, then close the clients regardless.
          logger.warn({ deadlineMs: deadline }, 'jobs still running at the close deadline; cancelling them')
          for (const w of all) w.cancelAllJobs('worker shutting down')
          await Promise.all(Object.values(writers).map((w) => w.close()))
          let t2: NodeJS.Timeout | undefined
          await Promise.race([Promise.all([...all.map((w) => w.close()), ...loops]), new Promise((resolve) => (t2 = setTimeout(resolve, 2000)))])
          clearTimeout(t2)
        }
        // Anything still batched has a job waiting on it; send it before the clients go.
        await Promise.all(Object.values(writers).map((w) => w.close()))
      },
    })
    // "Started" means connected: this also keeps a close() right after start from racing
    // BullMQ's connection setup.
    await Promise.all([...workers.values()].map((w) => w.waitUntilReady()))
    logger.info({ queues, concurrency: Object.fromEntries(queues.map((q) => [q, config.workerConcurrency[q]])), prefix: config.redisPrefix }, 'worker started')

    let closing: Promise<void> | null = null
    return {
      workers,
      processors,
      sweeper,
      db,
      s3,
      redis,
      stats: () => ({
        permanentFailures: { ...permanentFailures },
        retriedFailures: { ...retriedFailures },
        writes: Object.fromEntries(Object.entries(writers).map(([k, w]) => [k, { ...w.stats }])) as Record<keyof Writers, BatchWriter['stats']>,
      }),
      close: () => (closing ??= closeAll()),
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}
