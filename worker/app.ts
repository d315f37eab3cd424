// buildWorker(deps) connects the clients and starts one BullMQ Worker per configured queue,
// the token-mirror sync and the upload sweeper; server.ts only reads config and handles signals.
import { Queue, type Worker } from 'bullmq'
import type { RedisClient } from '../shared/redis.ts'
import type { Client as S3Client } from 'minio'
import type { Db, MongoClient } from 'mongodb'
import type { Logger } from 'pino'
import type { WorkerConfig } from './config.ts'
import { collections, connectMongo, ensureIndexes } from '../shared/mongo.ts'
import { type ShardedQueueName, type WorkerQueueName } from '../shared/queue-settings.ts'
import { assertNoEviction, createWorkerRedis, quitOrDisconnect } from '../shared/redis.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { periodic } from '../shared/periodic.ts'
import { syncTokenMirror } from '../shared/token-registry.ts'
import { createTombstoneCheck, syncTombstoneMirror } from '../deletion/tombstones.ts'
import { createBatchWriter, type BatchWriter } from './batch-writer.ts'
import { createClosers, type Closers } from './closers.ts'
import type { WorkerMetrics } from './metrics.ts'
import type { ProcessorDeps, Writers } from './context.ts'
import { describeError } from './mongo-errors.ts'
import { createDeliveriesProcessor } from './processors/deliveries.ts'
import { createLogsProcessor } from './processors/logs.ts'
import { createMediaProcessor } from './processors/media.ts'
import { createSessionsProcessor } from './processors/sessions.ts'
import { closeQueueWorkers, startQueueWorkers, type Processor } from './queue-workers.ts'
import { createSweeper } from './sweeper.ts'
import { createWebhookFanout } from './webhook-fanout.ts'
import { shardPrefix, shardPrefixes } from '../shared/redis-shards.ts'
import { startMaintenance, type Maintenance } from './maintenance.ts'

/** One processor factory per queue; a configured queue without one refuses to start. */
export const PROCESSORS: Record<ShardedQueueName, (deps: ProcessorDeps) => Processor> = {
  sessions: createSessionsProcessor,
  logs: createLogsProcessor,
  media: createMediaProcessor,
  deliveries: createDeliveriesProcessor,
}

export const TOKEN_SYNC_INTERVAL_MS = 30_000
/** How long close() lets running jobs finish before it stops waiting for them. */
export const CLOSE_DEADLINE_MS = 10_000

export interface WorkerDeps {
  config: WorkerConfig
  logger: Logger
  /** A Redis connection to use (it is not closed by close()); by default one is created. */
  redis?: RedisClient
  /** Overrides for tests, e.g. a shorter close deadline. */
  closeDeadlineMs?: number
  tokenSyncIntervalMs?: number
  /** Prometheus hooks (worker/metrics.ts): job durations, failures, batch sizes. */
  metrics?: WorkerMetrics
}

export interface WorkerApp {
  /** Each queue's Workers, one per consumed shard, in WORKER_SHARDS order. */
  workers: Map<WorkerQueueName, Worker[]>
  /** The processor functions of the first consumed shard (tests call them directly to simulate a re-run). */
  processors: Map<WorkerQueueName, Processor>
  /** The upload sweeper, when this process serves the media queue. */
  sweeper: ReturnType<typeof createSweeper> | null
  /** The worker-internal maintenance queue (retention runs), when this process serves it. */
  maintenance: Maintenance | null
  db: Db
  s3: S3Client
  redis: RedisClient
  stats(): {
    permanentFailures: Record<string, number>
    retriedFailures: Record<string, number>
    /** Per collection: insertMany calls, documents sent, batches retried one document at a time. */
    writes: Record<keyof Writers, BatchWriter['stats']>
  }
  close(): Promise<void>
}

/** The worker's own Redis connection (unless the caller gave one), logged at most every 10 s while Redis is away. */
function connectRedis(deps: WorkerDeps, closers: Closers): RedisClient {
  if (deps.redis) return deps.redis
  const redis = createWorkerRedis(deps.config)
  let lastLogged = 0
  redis.on('error', (err: Error) => {
    // ioredis reconnects by itself.
    if (Date.now() - lastLogged > 10_000) {
      lastLogged = Date.now()
      deps.logger.warn({ err: err.message }, 'redis connection error')
    }
  })
  closers.add('redis', () => quitOrDisconnect(redis))
  return redis
}

/** One batch writer per collection: concurrent jobs' documents go to MongoDB in one insertMany. */
function createWriters(db: Db, config: WorkerConfig, metrics?: WorkerMetrics): Writers {
  const c = collections(db)
  const maxItems = config.workerBatchMaxDocuments
  const maxWaitMs = config.workerBatchWaitMs
  const batch = (collection: string) => ({ maxItems, maxWaitMs, onBatch: metrics?.batchObserver(collection) })
  return {
    sessions: createBatchWriter(c.sessions, batch('test_sessions')),
    conflicts: createBatchWriter(c.conflicts, batch('test_session_conflicts')),
    logs: createBatchWriter(c.logs, batch('test_session_logs')),
    logBatches: createBatchWriter(c.logBatches, batch('test_session_log_batches')),
    media: createBatchWriter(c.media, batch('test_session_media')),
  }
}

/**
 * The token mirror sync, now and then periodically: it repairs the gateways' Redis copy after a
 * lost write or a wiped Redis. The deleted-session tombstones' mirror is repaired on the same
 * timer, for the same reasons (deletion/tombstones.ts).
 */
async function startTokenSync(deps: WorkerDeps, db: Db, redis: RedisClient, closers: Closers): Promise<void> {
  const syncTokens = async () => {
    try {
      await syncTokenMirror(db, redis, deps.config.redisPrefix)
    } catch (err) {
      deps.logger.warn({ err: describeError(err) }, 'token mirror sync failed; will retry')
    }
    try {
      const res = await syncTombstoneMirror(db, redis, deps.config.redisPrefix)
      if (res.repaired > 0) deps.logger.info(res, 'deleted-session tombstones re-mirrored to Redis')
    } catch (err) {
      deps.logger.warn({ err: describeError(err) }, 'tombstone mirror sync failed; will retry')
    }
  }
  await syncTokens()
  // periodic, not setInterval: its stop waits for a sync under way, which would otherwise fail
  // (and warn) when shutdown closes the MongoDB client under it.
  const sync = periodic(syncTokens, { intervalMs: deps.tokenSyncIntervalMs ?? TOKEN_SYNC_INTERVAL_MS })
  sync.start()
  closers.add('token sync', () => sync.stop())
}

/**
 * The upload sweeper, in a process that serves the media queue: it finishes photos whose job was
 * lost, enqueueing each into the shard it was uploaded for, whichever shards this process consumes.
 */
function startSweeper(deps: WorkerDeps, redis: RedisClient, s3: S3Client, db: Db, closers: Closers): WorkerApp['sweeper'] {
  const { config } = deps
  const mediaQueues = shardPrefixes(config.redisPrefix, config.redisShards).map(
    (prefix) => new Queue('media', { connection: redis, prefix }),
  )
  closers.add('media queues', () => Promise.all(mediaQueues.map((q) => q.close())))
  const sweeper = createSweeper({
    s3,
    bucket: config.s3.bucket,
    queue: (shard) => mediaQueues[shard],
    logger: deps.logger,
    graceMs: config.stagingGraceMs,
    expiryMs: config.uploadExpiryMs,
    named: async (ids, key) => {
      const c = collections(db)
      const [m, conflict] = await Promise.all([c.media.findOne({ ...ids, key }), c.conflicts.findOne({ ...ids, key })])
      return m !== null || conflict !== null
    },
    intervalMs: config.sweepIntervalMs,
  })
  sweeper.start()
  closers.add('sweeper', () => sweeper.stop())
  return sweeper
}

export async function buildWorker(deps: WorkerDeps): Promise<WorkerApp> {
  const { config, logger } = deps
  // Known queues only, each once (worker/config.ts); PROCESSORS has one for every sharded queue.
  const queues = config.workerQueues.filter((q): q is ShardedQueueName => q !== 'maintenance')
  const closers = createClosers(logger)
  try {
    const redis = connectRedis(deps, closers)
    await assertNoEviction(redis)
    const { client: mongo, db } = await connectMongo(config.mongodbUrl, config.mongoWriteConcern)
    closers.add('mongodb', () => (mongo as MongoClient).close())
    await ensureIndexes(db)
    const s3 = createS3(config.s3)
    await ensureBucket(s3, config.s3.bucket, config.s3.region)

    const writers = createWriters(db, config, deps.metrics)
    const tombstones = createTombstoneCheck(db)
    await startTokenSync(deps, db, redis, closers)
    const sweeper = queues.includes('media') ? startSweeper(deps, redis, s3, db, closers) : null

    // A shard's processors mark idempotency keys and release staged bytes under that shard's prefix.
    const shards = config.workerShards.map((shard) => {
      const prefix = shardPrefix(config.redisPrefix, shard)
      // A record's deliveries go to its own shard's deliveries queue, like the rest of its workspace's jobs.
      const webhooks = createWebhookFanout({ db, redis, prefix, schedule: config.webhooks })
      closers.add(`deliveries queue (shard ${shard})`, () => webhooks.close())
      const processorDeps: ProcessorDeps = {
        config: { ...config, redisPrefix: prefix },
        logger,
        redis,
        db,
        s3,
        writers,
        webhooks,
        tombstones,
      }
      return { shard, prefix, processors: new Map(queues.map((q) => [q, PROCESSORS[q](processorDeps)])) }
    })
    const started = startQueueWorkers({ config, logger, redis, metrics: deps.metrics }, shards)
    const deadline = deps.closeDeadlineMs ?? CLOSE_DEADLINE_MS
    closers.add('workers', () => closeQueueWorkers(started, Object.values(writers), deadline, logger))
    // "Started" means connected: this also keeps a close() right after start from racing
    // BullMQ's connection setup.
    await Promise.all([...started.workers.values()].flat().map((w) => w.waitUntilReady()))
    const maintenance = config.workerQueues.includes('maintenance')
      ? await startMaintenance({ config, logger, redis, db, s3, metrics: deps.metrics })
      : null
    if (maintenance) closers.add('maintenance', () => maintenance.close())
    logger.info(
      {
        queues,
        shards: config.workerShards,
        concurrency: Object.fromEntries(queues.map((q) => [q, config.workerConcurrency[q]])),
        prefix: config.redisPrefix,
      },
      'worker started',
    )

    let closing: Promise<void> | null = null
    return {
      workers: started.workers,
      processors: shards[0]!.processors,
      sweeper,
      maintenance,
      db,
      s3,
      redis,
      stats: () => ({
        permanentFailures: { ...started.failures.permanent },
        retriedFailures: { ...started.failures.retried },
        writes: Object.fromEntries(Object.entries(writers).map(([k, w]) => [k, { ...w.stats }])) as Record<
          keyof Writers,
          BatchWriter['stats']
        >,
      }),
      close: () => (closing ??= closers.closeAll()),
    }
  } catch (err) {
    await closers.closeAll()
    throw err
  }
}
