// A retention run whose worker process is SIGKILLed half-way converges: another worker process
// takes the job over once its lock expires, finishes the deletion, and deletes nothing else.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { MongoClient } from 'mongodb'
import t from 'tap'
import { objectKeys } from '../shared/keys.ts'
import { collections, ensureIndexes } from '../shared/mongo.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { createTokenAdmin } from '../tokens/admin.ts'
import { waitFor } from '../testing/wait.ts'
import { roleProcessEnv } from './helpers/env.ts'
import { testConfig } from './helpers/worker-harness.ts'

const DAY = 86_400_000
const config = testConfig()
const s3 = createS3(config.s3)
const bucket = config.s3.bucket
await ensureBucket(s3, bucket, config.s3.region)
const mongo = new MongoClient(config.mongodbUrl)
const db = mongo.db(new URL(config.mongodbUrl).pathname.slice(1))
await ensureIndexes(db)
const c = collections(db)
const children: ChildProcess[] = []

t.teardown(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  const left: string[] = []
  for await (const o of s3.listObjectsV2(bucket, '', true) as AsyncIterable<{ name: string }>) left.push(o.name)
  if (left.length) await s3.removeObjects(bucket, left)
  await s3.removeBucket(bucket).catch(() => {})
  await db.dropDatabase().catch(() => {})
  await mongo.close()
})

/** A worker process serving only the maintenance queue, with the worker's own credentials. */
function startWorker(): ChildProcess {
  const env = roleProcessEnv('worker', {
    REDIS_PREFIX: config.redisPrefix,
    MONGODB_URL: config.mongodbUrl,
    S3_BUCKET: bucket,
    WORKER_QUEUES: 'maintenance',
    // One document per batch: the run makes one delete round trip per document, so it is still
    // running after the first deletion the test sees (it kills at once, the run has 150 to go).
    // Nothing else is made slow on purpose: what outlasts the kill also finishes quickly after.
    RETENTION_BATCH_SIZE: '1',
    RETENTION_INTERVAL_MS: '3600000',
    // A dead worker's job is taken over within about lock + 2 x interval.
    WORKER_LOCK_MS: '2000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
  })
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/server.ts'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
  children.push(child)
  return child
}

t.test('SIGKILL in the middle of a run; the next worker finishes it', async (t) => {
  const admin = createTokenAdmin({ db, redis: null, prefix: config.redisPrefix, publicUrl: 'http://x' })
  const ws = (await admin.createWorkspace('kill-a', { actor: 'test' })).id
  const other = (await admin.createWorkspace('kill-b', { actor: 'test' })).id
  await admin.setWorkspaceRetention(ws, { photos: 1, logs: 1 }, 'test')
  const old = new Date(Date.now() - 3 * DAY)
  const EXPIRED_LOGS = 150
  const entries = (w: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({ workspace_id: w, session_id: 's', message: `${i}`, received_at: old }))
  await c.logs.insertMany(entries(ws, EXPIRED_LOGS))
  await c.logs.insertMany(entries(other, 100))
  await c.logs.insertOne({ workspace_id: ws, session_id: 's', message: 'fresh', received_at: new Date() })
  const keys: string[] = []
  for (let i = 0; i < 5; i++) {
    const key = objectKeys.final(ws, 's', `m${i}`)
    await s3.putObject(bucket, key, randomBytes(64))
    await c.media.insertOne({ workspace_id: ws, session_id: 's', media_id: `m${i}`, bucket, key, size: 64, received_at: old })
    keys.push(key)
  }

  const first = startWorker()
  // Polled: the run announces nothing until it ends. Killed as soon as it has deleted something.
  const expiredLeft = () => c.logs.countDocuments({ workspace_id: ws, received_at: old })
  await waitFor(async () => (await c.media.countDocuments({ workspace_id: ws })) < 5 || (await expiredLeft()) < EXPIRED_LOGS, {
    timeoutMs: 60_000,
    what: 'the first run to start deleting',
  })
  first.kill('SIGKILL')
  await once(first, 'exit')
  const leftAtKill = await expiredLeft()
  t.ok(leftAtKill > 0, `the run was cut short (${leftAtKill} of ${EXPIRED_LOGS} expired log entries left)`)

  startWorker()
  await waitFor(async () => (await expiredLeft()) === 0, {
    timeoutMs: 90_000,
    intervalMs: 200,
    what: 'the run to be taken over and finished',
  })
  t.equal(await c.media.countDocuments({ workspace_id: ws }), 0, 'every expired photo document is gone')
  for (const key of keys) await t.rejects(s3.statObject(bucket, key), { code: 'NotFound' }, `${key} is deleted`)
  t.same(
    (await c.logs.find({ workspace_id: ws }).toArray()).map((d) => d.message),
    ['fresh'],
    'the fresh entry stays',
  )
  t.equal(await c.logs.countDocuments({ workspace_id: other }), 100, 'a workspace without retention keeps everything')
})
