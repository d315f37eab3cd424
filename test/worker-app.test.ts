// Worker startup and shutdown: refusing bad configuration, the token-mirror sync, and the
// process's signal handling.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { MongoClient } from 'mongodb'
import type { Redis } from 'ioredis'
import { Redis as IORedis } from 'ioredis'
import { keys } from '../shared/keys.ts'
import { createS3, ensureBucket } from '../shared/s3.ts'
import { buildWorker } from '../worker/app.ts'
import { asRole, roleProcessEnv } from './helpers/env.ts'
import { captureLogger, jobIdFor, logsJob, randomId, startTestWorker, testConfig } from './helpers/worker-harness.ts'
import { onceWithin, untilEvent } from '../testing/wait.ts'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('a Redis that may evict keys is refused', async (t) => {
  const { logger } = captureLogger()
  const fake = { config: async () => ['maxmemory-policy', 'allkeys-lru'] } as unknown as Redis
  await t.rejects(buildWorker({ config: asRole(testConfig(), 'worker'), logger, redis: fake }), /noeviction/)
})

t.test('the token mirror is synced from MongoDB at start', async (t) => {
  const config = testConfig({ WORKER_QUEUES: 'sessions' })
  const mongo = new MongoClient(config.mongodbUrl)
  const db = mongo.db(new URL(config.mongodbUrl).pathname.slice(1))
  const redis = new IORedis(config.redisUrl)
  t.teardown(async () => {
    await db.dropDatabase().catch(() => {})
    await mongo.close()
    const leftovers = await redis.keys(`${config.redisPrefix}*`)
    if (leftovers.length) await redis.del(...leftovers)
    await redis.quit()
    await createS3(config.s3)
      .removeBucket(config.s3.bucket)
      .catch(() => {})
  })
  const now = new Date()
  await db
    .collection('workspaces')
    .insertOne({ _id: 'wsync' as never, slug: 'sync', name: 'Sync', active: true, created_at: now, updated_at: now })
  await db.collection('tokens').insertOne({
    _id: 'tsync' as never,
    workspace_id: 'wsync',
    token_hash: 'a'.repeat(64),
    label: null,
    permissions: ['test_session'],
    created_at: now,
    expires_at: null,
    revoked_at: null,
  })
  const { logger } = captureLogger()
  // The test's bucket, made with the inspector's key: the worker's may not create buckets.
  await ensureBucket(createS3(config.s3), config.s3.bucket, config.s3.region)
  const app = await buildWorker({ config: asRole(config, 'worker'), logger })
  t.teardown(() => app.close())
  const k = keys(config.redisPrefix)
  const entry = JSON.parse((await redis.hget(k.tokens, 'a'.repeat(64))) ?? 'null') as { id: string; workspace_active: boolean } | null
  t.match(entry, { id: 'tsync', workspace_id: 'wsync', workspace_active: true, revoked: false })
  t.ok(await redis.get(k.tokensSynced))
  t.equal(app.sweeper, null, 'no sweeper without the media queue')

  await app.close()
  await app.close() // idempotent
  t.ok(
    [...app.workers.values()].flat().every((w) => !w.isRunning()),
    'worker loops stopped',
  )
  if (app.redis.status !== 'end') await onceWithin(app.redis, 'end', { what: 'redis to close' })
})

t.test('the process starts, and exits 0 on SIGTERM; bad config exits 1 naming the variable', async (t) => {
  const config = testConfig()
  await ensureBucket(createS3(config.s3), config.s3.bucket, config.s3.region)
  const env = roleProcessEnv('worker', {
    REDIS_PREFIX: config.redisPrefix,
    MONGODB_URL: config.mongodbUrl,
    S3_BUCKET: config.s3.bucket,
    LOG_LEVEL: 'info',
  })
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/server.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (out += c.toString()))
  // The log line comes on stdout (pino's destination).
  await untilEvent(child.stdout, 'data', () => out.includes('"worker started"'), { what: 'worker started', timeoutMs: 30_000 })
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
  t.match(out, /shutting down/)

  const bad = spawn(process.execPath, ['--import', 'tsx', 'worker/server.ts'], {
    cwd: root,
    env: { ...env, WORKER_CONCURRENCY: 'lots' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  bad.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const [badCode] = await once(bad, 'exit')
  t.equal(badCode, 1)
  t.match(err, /WORKER_CONCURRENCY/)

  // Clean up what the process created.
  const mongo = new MongoClient(config.mongodbUrl)
  await mongo
    .db(new URL(config.mongodbUrl).pathname.slice(1))
    .dropDatabase()
    .catch(() => {})
  await mongo.close()
  await createS3(config.s3)
    .removeBucket(config.s3.bucket)
    .catch(() => {})
  const redis = new IORedis(config.redisUrl)
  const leftovers = await redis.keys(`${config.redisPrefix}*`)
  if (leftovers.length) await redis.del(...leftovers)
  await redis.quit()
})

t.test('close() is bounded by its deadline even while a job is running', async (t) => {
  // A batch big enough to still be running when close() is called: 60,000 entries take several
  // seconds to insert. The default LOGS_MAX_ENTRIES (10,000) would store a sixth of them, which
  // can finish inside the 2 s deadline and leave nothing to force.
  const stack = await startTestWorker(t, { WORKER_QUEUES: 'logs', LOGS_MAX_ENTRIES: '60000' })
  const entries = Array.from({ length: 60_000 }, (_, i) => ({ timestamp: '2021-01-25T11:02:41Z', tag: 't', message: `m${i}` }))
  const data = logsJob(randomId('w'), 's1', JSON.stringify({ entries }))
  await stack.add('logs', data)
  await (await stack.watch('logs')).started(jobIdFor(data), { what: 'job to start' })
  const started = Date.now()
  await stack.app.close()
  const took = Date.now() - started
  t.ok(took < 2000 + 1500, `closed in ${took} ms with a 2000 ms deadline`)
  t.ok(
    stack.lines.some((l) => l.msg.includes('close deadline')),
    'the forced close is logged',
  )
})
