// The worker's configuration: the shared sections it uses plus its own settings, read and
// validated once at start (worker/server.ts). Every setting is in the README's configuration table.
import { fail, int, type Env } from '../shared/config-vars.ts'
import * as shared from '../shared/config.ts'
import { WORKER_QUEUE_NAMES, type ShardedQueueName, type WorkerQueueName } from '../shared/queue-settings.ts'

export interface WorkerSettings {
  /**
   * Jobs in flight per queue in one worker process. Each session/logs job waits on its batch's
   * insertMany, so a queue drains at about concurrency / write latency (Little's law): small
   * session jobs want many in flight; logs bodies (up to MAX_JSON_BYTES) and photos (read and
   * hashed while copied) hold more memory each, so their queues keep fewer.
   */
  workerConcurrency: Record<ShardedQueueName, number>
  /**
   * WORKER_BATCH_WAIT_MS: how long a document may wait for others to join its insertMany
   * (worker/batch-writer.ts maxWaitMs). Longer means fewer, larger batches at moderate rates, at
   * the price of up to this much latency; worth it only where each insertMany has a real fixed
   * cost (the local FerretDB showed none: bench/README.md, T2a).
   */
  workerBatchWaitMs: number
  /**
   * WORKER_BATCH_MAX_DOCUMENTS: the most documents one insertMany carries (worker/batch-writer.ts
   * maxItems). A database's cost per document falls as batches grow (FerretDB here: ~750 us at
   * 75, ~620 at 1,000; bench/README.md, T2), and a full drain is where that cost is the limit.
   */
  workerBatchMaxDocuments: number
  /** Which queues this worker process serves, so operators can scale each queue on its own. */
  workerQueues: WorkerQueueName[]
  /** WORKER_SHARDS: which Redis shards this process consumes (default every one), so a busy shard can get workers of its own. */
  workerShards: number[]
  /**
   * BullMQ job lock: a worker renews it every half of this while a job runs. The jobs of a worker
   * that died are run again by another worker once their lock has expired and a stalled check
   * (every `workerStalledIntervalMs`) has seen it: roughly within lock + 2 x interval.
   */
  workerLockMs: number
  workerStalledIntervalMs: number
  sweepIntervalMs: number
  stagingGraceMs: number
  /** UPLOAD_EXPIRY_DAYS: an upload whose own job failed for good, and that nothing names, is removed after this long. */
  uploadExpiryMs: number
  /** Log entries stored as test_session_logs documents per logs body; the rest stay in the batch's raw_body only. */
  logsMaxEntries: number
  /** Outbound webhooks (README "Forwarding"): how deliveries are sent and retried. */
  webhooks: WebhookSettings
  /** How often the retention run is scheduled (once across all workers that serve `maintenance`). */
  retentionIntervalMs: number
  /** Documents read and deleted per query, and objects per S3 DeleteObjects call, in a retention run. */
  retentionBatchSize: number
  /** Documents one retention run deletes at most; the next run goes on where it stopped. */
  retentionMaxPerRun: number
}

export interface WebhookSettings {
  /**
   * WEBHOOK_ALLOW_PRIVATE=1 lets deliveries reach loopback, private, link-local and other
   * non-public addresses (tests, and receivers on the operator's own network). Off by default:
   * an endpoint URL is chosen by whoever administers a workspace, and must not become a way to
   * probe the servers next to the worker.
   */
  allowPrivate: boolean
  /** Whole request deadline: connect, send, and read the (bounded) answer. */
  timeoutMs: number
  /** First retry delay; doubles each attempt up to backoffCapMs. */
  backoffMs: number
  backoffCapMs: number
  /** How long a delivery keeps being retried before it is kept as a dead letter. */
  retryForMs: number
}

/** The worker reads no TLS (it serves no clients) and no public URL. */
export const loadWorkerConfig = shared.configLoader(
  [
    shared.processSettings,
    shared.redisSettings,
    shared.mongoSettings,
    shared.s3Settings,
    shared.idempotencySettings,
    shared.metricsSettings,
  ],
  workerSettings,
)
export type WorkerConfig = ReturnType<typeof loadWorkerConfig>

function workerSettings(env: Env): WorkerSettings {
  return {
    workerConcurrency: workerConcurrency(env),
    workerBatchWaitMs: int(env, 'WORKER_BATCH_WAIT_MS', 5, 0, 1000),
    // 10,000: far below MongoDB's 100,000 writes per batch; the batch's bytes are capped apart (16 MiB).
    workerBatchMaxDocuments: int(env, 'WORKER_BATCH_MAX_DOCUMENTS', 1000, 1, 10_000),
    workerQueues: workerQueues(env),
    workerShards: workerShards(env),
    workerLockMs: int(env, 'WORKER_LOCK_MS', 30_000, 1000),
    workerStalledIntervalMs: int(env, 'WORKER_STALLED_INTERVAL_MS', 30_000, 1000),
    sweepIntervalMs: int(env, 'SWEEP_INTERVAL_MS', 60_000, 100),
    stagingGraceMs: int(env, 'STAGING_GRACE_MS', 10 * 60_000, 0),
    // At least 7 days: a failed photo job must wait for an operator's `jobs retry` (README "Retention").
    uploadExpiryMs: int(env, 'UPLOAD_EXPIRY_DAYS', 30, 7, 3650) * 86_400_000,
    logsMaxEntries: int(env, 'LOGS_MAX_ENTRIES', 10_000, 1, 10_000_000),
    webhooks: webhookSettings(env),
    retentionIntervalMs: int(env, 'RETENTION_INTERVAL_MS', 3600_000, 1000),
    // 1000 is S3's DeleteObjects limit per call.
    retentionBatchSize: int(env, 'RETENTION_BATCH_SIZE', 500, 1, 1000),
    retentionMaxPerRun: int(env, 'RETENTION_MAX_PER_RUN', 100_000, 1),
  }
}

/** Known queue names only, each once; refused before anything connects. */
function workerQueues(env: Env): WorkerQueueName[] {
  const queues = (env.WORKER_QUEUES || WORKER_QUEUE_NAMES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (queues.length === 0) fail('WORKER_QUEUES', 'names no queue')
  for (const q of queues) {
    if (!(WORKER_QUEUE_NAMES as readonly string[]).includes(q))
      fail('WORKER_QUEUES', `names an unknown queue "${q}" (known: ${WORKER_QUEUE_NAMES.join(', ')})`)
  }
  return [...new Set(queues)] as WorkerQueueName[]
}

function webhookSettings(env: Env): WebhookSettings {
  const allow = env.WEBHOOK_ALLOW_PRIVATE ?? ''
  if (!['', '0', '1'].includes(allow)) fail('WEBHOOK_ALLOW_PRIVATE', `must be 0 or 1, got "${allow}"`)
  const backoffMs = int(env, 'WEBHOOK_BACKOFF_MS', 10_000, 10, 3_600_000)
  return {
    allowPrivate: allow === '1',
    timeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
    backoffMs,
    backoffCapMs: int(env, 'WEBHOOK_BACKOFF_CAP_MS', 3_600_000, backoffMs, 24 * 3_600_000),
    retryForMs: int(env, 'WEBHOOK_RETRY_FOR_MS', 3 * 86_400_000, 0, 30 * 86_400_000),
  }
}

/** Shard numbers below REDIS_SHARDS, each once; default all of them. */
function workerShards(env: Env): number[] {
  const count = int(env, 'REDIS_SHARDS', 1, 1)
  if (!env.WORKER_SHARDS) return Array.from({ length: count }, (_, k) => k)
  const shards = env.WORKER_SHARDS.split(',').map((s) => s.trim())
  for (const s of shards) {
    if (!/^\d+$/.test(s) || Number(s) >= count)
      fail('WORKER_SHARDS', `names "${s}", which is not a shard number below REDIS_SHARDS (${count})`)
  }
  return [...new Set(shards.map(Number))]
}

/** Per-queue defaults; WORKER_CONCURRENCY sets every queue, WORKER_CONCURRENCY_<QUEUE> one queue (it wins). */
// Deliveries mostly wait on receivers (up to WEBHOOK_TIMEOUT_MS each), not on this process.
// Not maintenance: its worker runs one job at a time (worker/maintenance.ts).
// Sessions: each job waits on its batch, and a drain fills 2 batches of WORKER_BATCH_MAX_DOCUMENTS
// (1,000) only when about twice that many jobs are in flight (at 256, batches averaged 74
// documents; bench/README.md, T2). The price is memory: a 100k-session drain peaked at 557 MB RSS
// against 410 MB at 256 jobs and batches of 100 (within compose's and kubernetes' 1 GiB limit).
export const CONCURRENCY_DEFAULTS: Record<ShardedQueueName, number> = { sessions: 2048, logs: 64, media: 64, deliveries: 32 }

function workerConcurrency(env: Env): WorkerSettings['workerConcurrency'] {
  const all = env.WORKER_CONCURRENCY ? int(env, 'WORKER_CONCURRENCY', 64, 1, 10_000) : undefined
  const one = (queue: ShardedQueueName) =>
    int(env, `WORKER_CONCURRENCY_${queue.toUpperCase()}`, all ?? CONCURRENCY_DEFAULTS[queue], 1, 10_000)
  const queues = Object.keys(CONCURRENCY_DEFAULTS) as ShardedQueueName[]
  return Object.fromEntries(queues.map((q) => [q, one(q)])) as WorkerSettings['workerConcurrency']
}
