// Retention on the real stack (README "Retention"): the run deletes what each workspace's periods
// say has expired, with the worker's own S3 key, and nothing else; it keeps to its batch budget and
// the next run goes on; a run killed half-way converges on the next one; the job scheduler runs it
// on the worker-internal `maintenance` queue and its progress shows in the worker's metrics.
import { randomBytes, randomUUID } from 'node:crypto'
import type { Client as S3Client } from 'minio'
import { MongoClient, type Db } from 'mongodb'
import t from 'tap'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { collections, ensureIndexes } from '../shared/mongo.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { objectKeys } from '../shared/keys.ts'
import { createTokenAdmin } from '../tokens/admin.ts'
import { createWorkerMetrics } from '../worker/metrics.ts'
import { MAINTENANCE_QUEUE, RETENTION_SCHEDULER } from '../worker/maintenance.ts'
import { runRetention, type RetentionDeps } from '../worker/processors/retention.ts'
import { asRole } from './helpers/env.ts'
import { startTestWorker, testConfig } from './helpers/worker-harness.ts'
import { sumOf, parseMetrics } from '../testing/prometheus.ts'
import { watchJobs } from '../testing/job-events.ts'

const DAY = 86_400_000
const now = new Date()
const daysAgo = (d: number) => new Date(now.getTime() - d * DAY)

const config = testConfig()
const root = createS3(config.s3) // the test-only inspector key: seeds and checks
const workerS3 = createS3(asRole(config, 'worker').s3) // what the run itself uses
const bucket = config.s3.bucket
await ensureBucket(root, bucket, config.s3.region)
const mongo = new MongoClient(config.mongodbUrl)
const db: Db = mongo.db(new URL(config.mongodbUrl).pathname.slice(1))
await ensureIndexes(db)
const c = collections(db)
const admin = createTokenAdmin({ db, redis: null, prefix: config.redisPrefix, publicUrl: 'http://127.0.0.1:1' })
const silent = pino({ level: 'silent' })

t.teardown(async () => {
  const left: string[] = []
  for await (const o of root.listObjectsV2(bucket, '', true) as AsyncIterable<{ name: string }>) left.push(o.name)
  if (left.length) await root.removeObjects(bucket, left)
  await root.removeBucket(bucket).catch(() => {})
  await db.dropDatabase().catch(() => {})
  await mongo.close()
})

const deps = (over: Partial<RetentionDeps> = {}): RetentionDeps => ({
  db,
  s3: workerS3,
  logger: silent,
  config: { retentionBatchSize: 500, retentionMaxPerRun: 100_000 },
  now: () => now,
  ...over,
})

async function workspace(retention?: { photos?: number | null; logs?: number | null; sessions?: number | null }) {
  const ws = await admin.createWorkspace(`r-${randomBytes(4).toString('hex')}`, { actor: 'test' })
  if (retention) await admin.setWorkspaceRetention(ws.id, retention, 'test')
  return ws.id
}

const id = (p: string) => `${p}${randomBytes(5).toString('hex')}`

/** One of each record of a session, received `age` days ago; photos with their objects. */
async function seedSession(ws: string, age: number, opts: { session?: boolean; session_id?: string; layout?: 'upload' | 'earlier' } = {}) {
  const session = opts.session_id ?? id('s')
  const at = daysAgo(age)
  if (opts.session !== false) await c.sessions.insertOne({ workspace_id: ws, session_id: session, received_at: at, raw_body: '{}' })
  await c.logBatches.insertOne({ workspace_id: ws, session_id: session, sha256: id('b'), raw_body: '{}', received_at: at })
  await c.logs.insertMany([0, 1].map((i) => ({ workspace_id: ws, session_id: session, tag: 't', message: `m${i}`, received_at: at })))
  const media = id('m')
  // Where the gateway writes a photo (and a conflicting upload) now, or where the earlier layout
  // put them: retention deletes what each document names, whichever it is.
  const earlier = opts.layout === 'earlier'
  const key = earlier ? objectKeys.final(ws, session, media) : objectKeys.upload(ws, session, media, randomUUID())
  const bytes = randomBytes(100 + age)
  await root.putObject(bucket, key, bytes)
  await c.media.insertOne({ workspace_id: ws, session_id: session, media_id: media, bucket, key, size: bytes.length, received_at: at })
  const conflictKey = earlier
    ? objectKeys.conflict(ws, session, media, 'f'.repeat(64))
    : objectKeys.upload(ws, session, media, randomUUID())
  await root.putObject(bucket, conflictKey, Buffer.from('other bytes'))
  await c.conflicts.insertOne({
    workspace_id: ws,
    session_id: session,
    media_id: media,
    sha256: 'f'.repeat(64),
    bucket,
    key: conflictKey,
    size: 11,
    received_at: at,
  })
  await c.conflicts.insertOne({ workspace_id: ws, session_id: session, media_id: null, sha256: id('c'), raw_body: '{}', received_at: at })
  return { session, key, conflictKey, bytes: bytes.length + 11 }
}

async function exists(key: string): Promise<boolean> {
  try {
    await root.statObject(bucket, key)
    return true
  } catch (err) {
    if ((err as { code?: string }).code === 'NotFound' || (err as { code?: string }).code === 'NoSuchKey') return false
    throw err
  }
}

/** Documents of one session, per collection. */
async function countsOf(ws: string, session: string) {
  const f = { workspace_id: ws, session_id: session }
  return {
    sessions: await c.sessions.countDocuments(f),
    logs: await c.logs.countDocuments(f),
    logBatches: await c.logBatches.countDocuments(f),
    media: await c.media.countDocuments(f),
    conflicts: await c.conflicts.countDocuments(f),
  }
}

const ALL = { sessions: 1, logs: 2, logBatches: 1, media: 1, conflicts: 2 }
const NONE = { sessions: 0, logs: 0, logBatches: 0, media: 0, conflicts: 0 }

t.test('photos and logs expire after their period; newer records, other workspaces and "keep" stay', async (t) => {
  const ws = await workspace({ photos: 30, logs: 7 })
  const keepAll = await workspace()
  const keepExplicit = await workspace({ photos: 5, logs: 5, sessions: 5 })
  await admin.setWorkspaceRetention(keepExplicit, { photos: null, logs: null, sessions: null }, 'test')

  const old = await seedSession(ws, 40) // photos and logs expired; the session itself is kept
  const middle = await seedSession(ws, 10) // logs expired, photos not
  const fresh = await seedSession(ws, 1)
  const otherOld = await seedSession(keepAll, 4000)
  const explicitOld = await seedSession(keepExplicit, 4000)

  const res = await runRetention(deps())
  t.equal(res.outcome, 'done')
  t.same(await countsOf(ws, old.session), { sessions: 1, logs: 0, logBatches: 0, media: 0, conflicts: 1 }, '40 days: photos and logs gone')
  t.notOk(await exists(old.key), 'its stored photo is deleted')
  t.notOk(await exists(old.conflictKey), 'its conflicting upload is deleted')
  t.same(await countsOf(ws, middle.session), { sessions: 1, logs: 0, logBatches: 0, media: 1, conflicts: 2 }, '10 days: logs gone')
  t.ok(await exists(middle.key), 'a photo within its period stays')
  t.same(await countsOf(ws, fresh.session), ALL, '1 day: everything stays')
  for (const [name, s] of [
    ['no settings', otherOld],
    ['"keep" set explicitly', explicitOld],
  ] as const) {
    t.same(await countsOf(name === 'no settings' ? keepAll : keepExplicit, s.session), ALL, `${name}: 11-year-old records stay`)
    t.ok((await exists(s.key)) && (await exists(s.conflictKey)), `${name}: its objects stay`)
  }
  t.same(res.removed, {
    test_sessions: 0,
    test_session_conflicts: 1,
    test_session_logs: 4,
    test_session_log_batches: 2,
    test_session_media: 1,
  })
  t.equal(res.objects, 2)
  t.equal(res.bytes, old.bytes)

  const again = await runRetention(deps())
  t.equal(Object.values(again.removed).reduce((a, b) => a + b, 0) + again.objects, 0, 'a second run finds nothing left')
})

t.test('photos stored under the earlier layout (final keys, conflicts/) expire the same way', async (t) => {
  const ws = await workspace({ photos: 30 })
  const old = await seedSession(ws, 40, { layout: 'earlier' })
  const fresh = await seedSession(ws, 1, { layout: 'earlier' })
  t.match(old.key, new RegExp(`^${ws}/`))
  t.match(old.conflictKey, /^conflicts\//)
  await runRetention(deps())
  t.notOk(await exists(old.key), 'its stored photo is deleted')
  t.notOk(await exists(old.conflictKey), 'its conflicting upload is deleted')
  t.equal(await c.media.countDocuments({ workspace_id: ws, session_id: old.session }), 0)
  t.ok((await exists(fresh.key)) && (await exists(fresh.conflictKey)), 'newer ones stay')
})

t.test('an expired session takes all its records with it; nothing outlives the sessions period', async (t) => {
  const ws = await workspace({ sessions: 30 })
  const old = await seedSession(ws, 31)
  // A photo and logs uploaded yesterday for that old session: they go with it.
  const late = await seedSession(ws, 1, { session: false, session_id: old.session })
  const fresh = await seedSession(ws, 29)
  const orphanOld = await seedSession(ws, 31, { session: false }) // records whose session never arrived
  const orphanFresh = await seedSession(ws, 2, { session: false })

  const res = await runRetention(deps())
  t.equal(res.outcome, 'done')
  t.same(await countsOf(ws, old.session), NONE, 'the session and every record of it are gone')
  for (const key of [old.key, old.conflictKey, late.key, late.conflictKey]) t.notOk(await exists(key), `${key} is deleted`)
  t.same(await countsOf(ws, fresh.session), ALL, 'a session within its period keeps everything')
  t.same(await countsOf(ws, orphanOld.session), NONE, 'records older than the sessions period go even without a session')
  t.notOk(await exists(orphanOld.key))
  t.same(await countsOf(ws, orphanFresh.session), { ...ALL, sessions: 0 }, 'newer records without a session stay')
  t.ok((await exists(fresh.key)) && (await exists(orphanFresh.key)))
})

t.test('a run deletes at most RETENTION_MAX_PER_RUN documents, in batches; the next run goes on', async (t) => {
  const ws = await workspace({ logs: 1 })
  const session = id('s')
  await c.logs.insertMany(
    [0, 1, 2, 3, 4].map((i) => ({ workspace_id: ws, session_id: session, message: `m${i}`, received_at: daysAgo(2) })),
  )
  await c.logs.insertOne({ workspace_id: ws, session_id: session, message: 'new', received_at: now })
  const limited = deps({ config: { retentionBatchSize: 2, retentionMaxPerRun: 3 } })

  const first = await runRetention(limited)
  t.equal(first.outcome, 'budget', 'the first run stops at its budget')
  t.equal(first.removed.test_session_logs, 3)
  t.equal(await c.logs.countDocuments({ workspace_id: ws }), 3, '2 expired + 1 new left')
  const second = await runRetention(limited)
  t.equal(second.outcome, 'done')
  t.equal(second.removed.test_session_logs, 2, 'the second run removes the rest')
  t.same(
    (await c.logs.find({ workspace_id: ws }).toArray()).map((d) => d.message),
    ['new'],
  )
})

t.test('a run that dies between deleting objects and documents converges on the next run', async (t) => {
  const ws = await workspace({ photos: 1, sessions: 10 })
  const seeded = [await seedSession(ws, 20), await seedSession(ws, 20), await seedSession(ws, 3)]
  const fresh = await seedSession(ws, 0)
  // The S3 client of a process that is killed right after its first DeleteObjects answered: a
  // narrow wrapper, because a real SIGKILL cannot be aimed between two awaits.
  let calls = 0
  const dying = new Proxy(workerS3, {
    get(target, prop, receiver) {
      if (prop !== 'removeObjects') return Reflect.get(target, prop, receiver) as unknown
      return async (...args: Parameters<S3Client['removeObjects']>) => {
        const res = await target.removeObjects(...args)
        if (++calls === 1) throw new Error('killed')
        return res
      }
    },
  })
  await t.rejects(runRetention(deps({ s3: dying, config: { retentionBatchSize: 1, retentionMaxPerRun: 100 } })), /killed/)
  t.equal(calls, 1)
  t.equal(await c.media.countDocuments({ workspace_id: ws }), 4, 'the documents of the removed object are still there')

  // A run cancelled at a batch boundary (the worker shutting down) stops there too.
  const aborted = new AbortController()
  aborted.abort()
  await t.rejects(runRetention(deps(), aborted.signal), { code: 'job_cancelled' })

  const res = await runRetention(deps())
  t.equal(res.outcome, 'done')
  for (const s of seeded.slice(0, 2)) {
    t.same(await countsOf(ws, s.session), NONE, 'the expired sessions are gone completely')
    t.notOk((await exists(s.key)) || (await exists(s.conflictKey)), 'and their objects')
  }
  t.same(await countsOf(ws, seeded[2]!.session), { sessions: 1, logs: 2, logBatches: 1, media: 0, conflicts: 1 }, '3 days: photos gone')
  t.same(await countsOf(ws, fresh.session), ALL)
  t.ok(await exists(fresh.key))
})

t.test(
  'the bucket expires what the earlier layout staged, and nothing else: one lifecycle rule, on staging/, set by deploy/minio/init.sh',
  { skip: process.env.STACK_S3 === 'versity' && 'the local stack sets the rule on MinIO only (deploy/minio/init.sh)' },
  async (t) => {
    // The stack's own bucket, which init.sh set up (each test file's private bucket has no rules).
    const stackBucket = process.env.S3_BUCKET ?? 'rdt-media'
    const lifecycle = await root.getBucketLifecycle(stackBucket)
    // The client's parser gives one rule as an object and several as an array.
    const rules = [lifecycle?.Rule ?? []].flat()
    // Photos stay under media/ and markers under pending/ (the sweeper's index): a rule there would lose photos.
    t.equal(rules.length, 1, 'exactly one rule, however often init.sh ran')
    t.match(rules[0], { ID: 'rdt-staging-expiry', Status: 'Enabled', Filter: { Prefix: 'staging/' }, Expiration: { Days: 30 } })
  },
)

t.test('the scheduler runs it on the maintenance queue, once, and the worker exports its progress', async (t) => {
  const metrics = createWorkerMetrics()
  // A stack of its own: another prefix, database and bucket.
  const stack = await startTestWorker(t, { WORKER_QUEUES: 'maintenance', RETENTION_INTERVAL_MS: '3600000' }, { metrics })
  const sc = collections(stack.db)
  const { id: ws } = await createTokenAdmin({ db: stack.db, redis: null, prefix: '', publicUrl: 'http://x' }).createWorkspace('sched', {
    actor: 'test',
  })
  await createTokenAdmin({ db: stack.db, redis: null, prefix: '', publicUrl: 'http://x' }).setWorkspaceRetention(ws, { logs: 1 }, 'test')
  await sc.logs.insertMany([0, 1, 2].map((i) => ({ workspace_id: ws, session_id: 's1', message: `${i}`, received_at: daysAgo(3) })))

  const schedulers = await stack.app.maintenance!.queue.getJobSchedulers()
  t.equal(schedulers.length, 1, 'one scheduler')
  t.match(schedulers[0], { key: RETENTION_SCHEDULER, every: 3600000 })

  // Runs the scheduled job now (the first one ran at start, before the records existed).
  const watch = await watchJobs(t, { redisUrl: stack.config.redisUrl, prefix: stack.config.redisPrefix, queue: MAINTENANCE_QUEUE })
  const job = await stack.app.maintenance!.queue.add(RETENTION_SCHEDULER, {}, { jobId: 'run-now' })
  const [outcome] = await watch.settled([job.id!], { timeoutMs: 30_000, what: 'the retention job' })
  t.equal(outcome!.state, 'completed', 'the run completed on the worker')
  t.equal(await sc.logs.countDocuments({ workspace_id: ws }), 0, 'the expired logs are gone')

  const samples = parseMetrics(await metrics.registry.metrics())
  t.equal(sumOf(samples, 'rdt_retention_removed_total', { collection: 'test_session_logs' }), 3)
  t.ok(sumOf(samples, 'rdt_retention_runs_total', { outcome: 'done' }) >= 1)
  t.ok(sumOf(samples, 'rdt_retention_last_run_timestamp_seconds') > Date.now() / 1000 - 3600, 'the last run time is set')
  t.ok(sumOf(samples, 'rdt_retention_last_run_duration_seconds') >= 0)
})

t.test('a second worker sets up the schedule while its first job waits, with the worker role', async (t) => {
  // Two workers starting together: the first adds the scheduler and its first run (waiting, as
  // `every` runs at once), then the second upserts it. BullMQ's script then looks for that job in
  // the wait list and reads the queue's paused flag with HEXISTS, which the worker's ACL once
  // lacked ("could not set up the retention schedule", seen in the bench's two-worker logs). No
  // worker consumes this queue, so the first run is sure to be waiting.
  const own = testConfig()
  const connection = new Redis(asRole(own, 'worker').redisUrl, { maxRetriesPerRequest: null })
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: own.redisPrefix })
  t.teardown(async () => {
    await queue.obliterate({ force: true }).catch(() => {})
    await queue.close()
    connection.disconnect()
  })
  const setUp = () => queue.upsertJobScheduler(RETENTION_SCHEDULER, { every: 3_600_000 }, { name: RETENTION_SCHEDULER, data: {} })
  await setUp()
  t.equal(await queue.getWaitingCount(), 1, 'the first run waits')
  await t.resolves(setUp(), 'the second set-up')
  t.equal((await queue.getJobSchedulers()).length, 1, 'still one scheduler')
})
