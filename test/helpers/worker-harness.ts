// Test support for test/worker-*.test.ts (not used by the worker itself). Each call gets its own
// Redis prefix, MongoDB database and S3 bucket, so test files never share state, and removes
// them again in teardown. The services come from the environment (`npm test` starts them).
import { deleteKeysWithPrefix } from '../../testing/redis-keys.ts'
import { Queue, type Job, type JobsOptions } from 'bullmq'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { Redis } from 'ioredis'
import { MongoClient, type Db } from 'mongodb'
import type { Client as S3Client } from 'minio'
import { pino } from 'pino'
import type { TestConfig } from '../../testing/config.ts'
import { asRole, testConfig as baseTestConfig } from './env.ts'
import { fixturesDir } from '../../testing/fixtures.ts'
import { watchJobs, type JobOutcome, type JobWatch } from '../../testing/job-events.ts'
import { jobIds, keys, objectKeys } from '../../shared/keys.ts'
import { type LogsJob, type MediaJob, type SessionsQueueJob } from '../../shared/queues.ts'
import { defaultJobOptions, type QueueName } from '../../shared/queue-settings.ts'
import { createS3, ensureBucket } from '../../shared/s3.ts'
import { streamPut } from '../../shared/s3-stream-put.ts'
import { SNIFF_BYTES, sniffType } from '../../shared/sniff.ts'
import { idempotencyValue } from '../../shared/idempotency.ts'
import { buildWorker, type WorkerApp, type WorkerDeps } from '../../worker/app.ts'

/** The real request bodies (docs/architecture.md §1), byte for byte, from testing/fixtures/. */
const fixture = (name: string) => readFileSync(new URL(name, fixturesDir), 'utf8')
export const FIXTURES = {
  sessionRdtoolkit: fixture('session-rdtoolkit.json'),
  sessionSpecExample: fixture('session-spec-example.json'),
  logsRdtoolkit: fixture('logs-rdtoolkit.json'),
}

export const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')
export const randomId = (prefix = '') => prefix + randomBytes(6).toString('hex')

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A config with a private prefix, database and bucket; `env` overrides anything. */
export function testConfig(env: Record<string, string> = {}): TestConfig {
  return baseTestConfig({
    S3_BUCKET: `wt-${randomBytes(5).toString('hex')}`,
    WORKER_CONCURRENCY: '16',
    // Tests call sweepOnce() themselves.
    SWEEP_INTERVAL_MS: '3600000',
    ...env,
  })
}

export interface LogLine {
  level: number
  msg: string
  [k: string]: unknown
}

/** A pino logger whose lines are kept in memory, so tests can check what was logged. */
export function captureLogger() {
  const lines: LogLine[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as LogLine)
      cb()
    },
  })
  return { logger: pino({ level: 'debug' }, stream), lines }
}

export interface TestStack {
  config: TestConfig
  app: WorkerApp
  lines: LogLine[]
  /** A producer connection and queues with the test's prefix. */
  redis: Redis
  queues: Record<QueueName, Queue>
  db: Db
  s3: S3Client
  /** Adds a job as the gateway does: pending idempotency key first, deterministic id, default options. */
  add(queue: QueueName, data: SessionsQueueJob | LogsJob | MediaJob, opts?: JobsOptions): Promise<Job>
  /** Waits (on its events) until a job is completed or failed for good and returns the final state. */
  settled(queue: QueueName, jobId: string, opts?: { timeoutMs?: number }): Promise<{ state: string; job: Job }>
  /** The queue's job events, for waits settled() does not cover (several jobs, a job starting). */
  watch(queue: QueueName): Promise<JobWatch>
  idemKey(kind: 's' | 'l' | 'm', ws: string, session: string, extra?: string): string
}

export function jobIdFor(data: SessionsQueueJob | LogsJob | MediaJob): string {
  switch (data.kind) {
    case 'session':
      return jobIds.session(data.workspace_id, data.session_id)
    case 'conflict':
      return jobIds.conflict(data.workspace_id, data.session_id, data.sha256)
    case 'logs':
      return jobIds.logs(data.workspace_id, data.session_id, data.sha256)
    case 'media':
      return jobIds.media(data.workspace_id, data.session_id, data.media_id)
  }
}

/** Starts a worker on private state and registers its teardown. */
export async function startTestWorker(
  t: Teardown,
  env: Record<string, string> = {},
  deps: Pick<WorkerDeps, 'metrics'> = {},
): Promise<TestStack> {
  const config = testConfig(env)
  const { logger, lines } = captureLogger()
  const s3 = createS3(config.s3)
  // The test's own bucket, made with the inspector's key: the worker's may not create buckets
  // (deploy/minio/policies/worker.json).
  await ensureBucket(s3, config.s3.bucket, config.s3.region)
  const app = await buildWorker({ config: asRole(config, 'worker'), logger, closeDeadlineMs: 2000, ...deps })
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
  const mongo = new MongoClient(config.mongodbUrl)
  const db = mongo.db(new URL(config.mongodbUrl).pathname.slice(1))
  const prefix = config.redisPrefix
  const queues = {
    sessions: new Queue('sessions', { connection: redis, prefix }),
    logs: new Queue('logs', { connection: redis, prefix }),
    media: new Queue('media', { connection: redis, prefix }),
  }
  const k = keys(prefix)
  // One event listener per queue, made on first use (each holds a blocking Redis connection).
  const watches = new Map<QueueName, Promise<JobWatch>>()
  const watch = (queue: QueueName) => {
    if (!watches.has(queue)) watches.set(queue, watchJobs(t, { redisUrl: config.redisUrl, prefix, queue }))
    return watches.get(queue)!
  }

  t.teardown(async () => {
    await app.close()
    await Promise.all(Object.values(queues).map((q) => q.close()))
    await db.dropDatabase().catch(() => {})
    await mongo.close()
    await emptyBucket(s3, config.s3.bucket).catch(() => {})
    await deleteKeysWithPrefix(redis, prefix)
    await redis.quit()
  })

  return {
    config,
    app,
    lines,
    redis,
    queues,
    db,
    s3,
    idemKey: (kind, ws, session, extra) => k.idempotency(kind, ws, session, extra),
    async add(queue, data, opts = {}) {
      const kind = data.kind === 'logs' ? 'l' : data.kind === 'media' ? 'm' : 's'
      const extra = data.kind === 'logs' ? data.sha256 : data.kind === 'media' ? data.media_id : undefined
      if (data.kind !== 'conflict')
        await redis.set(
          k.idempotency(kind, data.workspace_id, data.session_id, extra),
          idempotencyValue.pending(data.kind === 'media' ? '' : data.sha256, Date.now()),
          'PX',
          60_000,
        )
      return queues[queue].add(data.kind, data, { ...defaultJobOptions, jobId: jobIdFor(data), ...opts })
    },
    watch,
    async settled(queue, jobId, opts) {
      const [{ state }] = (await (await watch(queue)).settled([jobId], { what: `job ${jobId} to settle`, ...opts })) as [JobOutcome]
      // Read after the final event, so returnvalue and failedReason are filled in.
      const job = await queues[queue].getJob(jobId)
      if (!job) throw new Error(`job ${jobId} settled but is gone`)
      return { state, job }
    },
  }
}

async function emptyBucket(s3: S3Client, bucket: string): Promise<void> {
  const names: string[] = []
  for await (const obj of s3.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) if (obj.name) names.push(obj.name)
  if (names.length) await s3.removeObjects(bucket, names)
  await s3.removeBucket(bucket)
}

/** The fields every JSON job carries, as the gateway sets them for `body` (token tok1, received now). */
function jsonJob(ws: string, session: string, body: string) {
  return { workspace_id: ws, session_id: session, token_id: 'tok1', received_at: new Date().toISOString(), sha256: sha256(body), body }
}

export function sessionJob(ws: string, session: string, body: string, kind: 'session' | 'conflict' = 'session'): SessionsQueueJob {
  return { kind, ...jsonJob(ws, session, body) }
}

export function logsJob(ws: string, session: string, body: string): LogsJob {
  return { kind: 'logs', ...jsonJob(ws, session, body) }
}

/** A Job-shaped object for calling a processor directly (as a re-run after a stall would). */
export function fakeJob(data: unknown, id = 'direct'): Job {
  return { id, data, attemptsMade: 0, opts: {} } as unknown as Job
}

interface MediaOptions {
  ws: string
  session: string
  media: string
  bytes: Buffer
  filename?: string | null
  contentType?: string | null
  metadata?: Record<string, string>
  /** Leave out the pending/ marker the gateway writes first (an upload only; default false). */
  noMarker?: boolean
}

/**
 * Uploads bytes the way the gateway does (its key, a marker then the upload, the same key shapes
 * and metadata, the sniffed type in the job) and returns the media job.
 */
export async function uploadMedia(stack: Pick<TestStack, 'config'>, opts: MediaOptions): Promise<MediaJob> {
  const uploadId = randomUUID()
  const s3 = asRole(stack.config, 'gateway').s3
  if (!opts.noMarker) {
    const marker = objectKeys.pending(opts.ws, opts.session, opts.media, uploadId)
    await streamPut(s3, stack.config.s3.bucket, marker, Readable.from([]), { contentLength: 0 })
  }
  const key = objectKeys.upload(opts.ws, opts.session, opts.media, uploadId)
  const job = await putMedia(stack, s3, key, opts)
  return { ...job, sniffed_type: sniffType(opts.bytes.subarray(0, SNIFF_BYTES)) }
}

/**
 * Stages bytes the way the gateway of the earlier layout did (under staging/, for its job to
 * verify and move) and returns that media job: jobs and objects of that layout are still
 * finished after an upgrade. Written with the worker's key: the gateway's may no longer write there.
 */
export async function stageMedia(stack: Pick<TestStack, 'config'>, opts: MediaOptions): Promise<MediaJob> {
  const key = objectKeys.staging(opts.ws, opts.session, opts.media, randomUUID())
  return putMedia(stack, asRole(stack.config, 'worker').s3, key, opts)
}

async function putMedia(stack: Pick<TestStack, 'config'>, s3: TestConfig['s3'], key: string, opts: MediaOptions): Promise<MediaJob> {
  const { config } = stack
  const received_at = new Date().toISOString()
  const filename = opts.filename === undefined ? 'photo.jpg' : opts.filename
  const contentType = opts.contentType === undefined ? 'image/jpeg' : opts.contentType
  const metaText = (s: string | null) => (s === null ? '' : encodeURIComponent(s))
  await streamPut(s3, config.s3.bucket, key, Readable.from([opts.bytes]), {
    contentLength: opts.bytes.length,
    metadata: {
      'workspace-id': opts.ws,
      'session-id': opts.session,
      'media-id': opts.media,
      'token-id': 'tok1',
      'received-at': received_at,
      filename: metaText(filename),
      'declared-content-type': metaText(contentType),
      size: String(opts.bytes.length),
      ...opts.metadata,
    },
  })
  return {
    kind: 'media',
    workspace_id: opts.ws,
    session_id: opts.session,
    token_id: 'tok1',
    received_at,
    media_id: opts.media,
    bucket: config.s3.bucket,
    staging_key: key,
    size: opts.bytes.length,
    sha256: sha256(opts.bytes),
    filename,
    content_type: contentType,
  }
}
