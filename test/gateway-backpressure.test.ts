// Backpressure through real gateways, workers and Redis: 503 + Retry-After while a
// queue's backlog, the staged photo bytes or Redis memory is past its mark, back to 201 once it
// drains (accepted work keeps draining meanwhile); 503 while Redis is down, and recovery; and
// every process refusing an evicting Redis. The memory, outage and eviction cases run on a
// private Redis (the shared test Redis is used by other test files in parallel).
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildGateway } from '../gateway/app.ts'
import { runCli } from '../cli/run.ts'
import { repoRoot } from '../stack/paths.ts'
import type { TestConfig } from '../testing/config.ts'
import { jobIds, keys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import type { QueueName } from '../shared/queue-settings.ts'
import { releaseStagedMedia } from '../shared/staged-media.ts'
import { buildWorker, type WorkerApp } from '../worker/app.ts'
import { ensureBinaries } from '../stack/install.ts'
import { startRedis } from '../stack/services.ts'
import { asRole, inspectorQueues, roleProcessEnv, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { watchJobs } from '../testing/job-events.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg } from '../testing/media.ts'

const silent = pino({ level: 'silent' })

async function gatewayFor(t: { teardown(fn: () => unknown): void }, config: TestConfig): Promise<FastifyInstance> {
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  t.teardown(() => app.close())
  return app
}

async function workerFor(config: TestConfig, queues: string): Promise<WorkerApp> {
  return buildWorker({
    config: asRole({ ...config, workerQueues: queues.split(',') as QueueName[] }, 'worker'),
    logger: silent,
    closeDeadlineMs: 2000,
  })
}

async function dropDb(config: TestConfig): Promise<void> {
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  await db.dropDatabase().catch(() => {})
  await client.close()
}

const json = { 'content-type': 'application/json; charset=utf-8' }
const putSession = (app: FastifyInstance, token: string, guid: string) =>
  app.inject({ method: 'PUT', url: `/ingest/${token}/test_session/${guid}/`, payload: `{"state":"QUEUED","n":"${guid}"}`, headers: json })
const putLogs = (app: FastifyInstance, token: string, guid: string) =>
  app.inject({ method: 'PUT', url: `/ingest/${token}/test_session/${guid}/logs/`, payload: `[{"tag":"${guid}"}]`, headers: json })
const putMedia = (app: FastifyInstance, token: string, guid: string, media: string, bytes: Buffer) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${guid}/media/${media}/`,
    payload: bytes,
    headers: { 'content-type': 'image/jpeg' },
  })

t.test('a queue backlog over the mark: 503 + Retry-After for that queue only, 201 again once workers drain it', async (t) => {
  const config = testConfig({ BACKLOG_HIGH_WATER: '3', BACKPRESSURE_POLL_MS: '50', BACKPRESSURE_RETRY_AFTER_S: '7' })
  const queues = inspectorQueues(t, config)
  t.teardown(() => dropDb(config))
  const seeded = await seedToken(config)
  const app = await gatewayFor(t, config)

  for (const guid of ['b-1', 'b-2', 'b-3']) t.equal((await putSession(app, seeded.token, guid)).statusCode, 201, `${guid} accepted`)
  await app.backlog.pollOnce() // the next scheduled poll would do the same within 50 ms
  t.equal(app.backlog.snapshot().queues.sessions.waiting, 3)
  const refused = await putSession(app, seeded.token, 'b-4')
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '7', 'Retry-After is BACKPRESSURE_RETRY_AFTER_S')
  t.equal(JSON.parse(refused.body).error, 'overloaded_backlog')
  t.equal(await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'b-4')), undefined, 'nothing queued for the refused request')
  t.equal((await putLogs(app, seeded.token, 'b-1')).statusCode, 201, 'the logs queue is not backed up, so logs are still accepted')

  // A worker drains what was accepted; the gateway accepts again at the next poll after that.
  const worker = await workerFor(config, 'sessions')
  t.teardown(() => worker.close())
  const sessionJobs = await watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue: 'sessions' })
  const accepted = ['b-1', 'b-2', 'b-3'].map((guid) => jobIds.session(seeded.workspaceId, guid))
  t.same(
    (await sessionJobs.settled(accepted, { what: 'the backlog to drain' })).map((o) => o.state),
    ['completed', 'completed', 'completed'],
  )
  await app.backlog.pollOnce() // the next scheduled poll would do the same within 50 ms
  t.equal((await putSession(app, seeded.token, 'b-4')).statusCode, 201, 'accepted again once drained')
  const [last] = await sessionJobs.settled([jobIds.session(seeded.workspaceId, 'b-4')])
  t.equal(last?.state, 'completed')
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  const stored = await collections(db).sessions.countDocuments({ workspace_id: seeded.workspaceId })
  t.equal(stored, 4, 'every session answered 201 was stored, including those accepted before the refusal')

  // Delayed jobs (retries waiting out their backoff) count too.
  const delayed = await Promise.all(
    ['d-1', 'd-2', 'd-3'].map((id) => queues.sessions.add('session', { kind: 'test' }, { jobId: `x.${id}`, delay: 3_600_000 })),
  )
  await app.backlog.pollOnce()
  t.equal(app.backlog.snapshot().queues.sessions.delayed, 3)
  t.equal((await putSession(app, seeded.token, 'b-5')).statusCode, 503, 'delayed jobs count towards the backlog')
  await Promise.all(delayed.map((j) => j.remove()))
  await app.backlog.pollOnce()
  t.equal((await putSession(app, seeded.token, 'b-5')).statusCode, 201)
})

t.test('staged media bytes: counted at enqueue, released once by the worker, 503 for media over the mark', async (t) => {
  const size = 100_000
  const config = testConfig({ STAGED_MEDIA_HIGH_WATER_BYTES: String(size + size / 2), BACKPRESSURE_POLL_MS: '50' })
  const queues = inspectorQueues(t, config)
  t.teardown(() => dropDb(config))
  const k = keys(config.redisPrefix)
  const seeded = await seedToken(config)
  const app = await gatewayFor(t, config)
  const redis = new Redis(config.redisUrl)
  t.teardown(() => redis.disconnect())
  const counter = async () => Number((await redis.get(k.stagedMediaBytes)) ?? 0)

  t.equal((await putMedia(app, seeded.token, 'm-1', 'raw', fakeJpeg(size))).statusCode, 201)
  t.equal(await counter(), size, 'the staged bytes are counted with the enqueue')
  const job1 = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'm-1', 'raw'))
  t.equal(await redis.hget(k.stagedMedia, job1!.data.staging_key), String(size), 'registered under its staging key')
  t.equal((await putMedia(app, seeded.token, 'm-1', 'cropped', fakeJpeg(size))).statusCode, 201)
  t.equal(await counter(), 2 * size)

  await app.backlog.pollOnce()
  t.equal(app.backlog.snapshot().stagedMediaBytes, 2 * size)
  const refused = await putMedia(app, seeded.token, 'm-1', 'attempt_1_raw', fakeJpeg(size))
  t.equal(refused.statusCode, 503)
  t.equal(JSON.parse(refused.body).error, 'overloaded_staged_media')
  t.ok(refused.headers['retry-after'])
  t.equal(await counter(), 2 * size, 'a refused upload stages nothing')
  t.equal((await putSession(app, seeded.token, 'm-1')).statusCode, 201, 'sessions are still accepted')

  const worker = await workerFor(config, 'media')
  t.teardown(() => worker.close())
  // The worker releases a photo's staged bytes before it completes the job.
  const mediaJobs = await watchJobs(t, { redisUrl: config.redisUrl, prefix: config.redisPrefix, queue: 'media' })
  const photos = ['raw', 'cropped'].map((m) => jobIds.media(seeded.workspaceId, 'm-1', m))
  t.same(
    (await mediaJobs.settled(photos, { what: 'the worker to record both photos' })).map((o) => o.state),
    ['completed', 'completed'],
  )
  t.equal(await counter(), 0, 'back to 0 once the worker has recorded both photos')
  t.equal(await redis.hlen(k.stagedMedia), 0, 'and nothing registered')
  await app.backlog.pollOnce()
  t.equal((await putMedia(app, seeded.token, 'm-1', 'attempt_1_raw', fakeJpeg(1000))).statusCode, 201, 'media accepted again')
  await mediaJobs.settled([jobIds.media(seeded.workspaceId, 'm-1', 'attempt_1_raw')], { what: 'the third photo to be processed' })
  t.equal(await counter(), 0, 'and its bytes released too')

  // A job that runs twice (a stalled lock, a retry after a crash) must subtract once. Another
  // photo's bytes are registered meanwhile, so a second subtraction would show (and not be hidden by the floor at 0).
  const done = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'm-1', 'raw'))
  t.equal(await done?.getState(), 'completed')
  await redis.multi().hset(k.stagedMedia, 'staging/other-upload', '12345').incrby(k.stagedMediaBytes, 12345).exec()
  const rerun = (await worker.processors.get('media')!(done!)) as { outcome: string }
  t.equal(rerun.outcome, 'replay', 'the re-run finds its own upload recorded as the photo')
  t.equal(await counter(), 12345, 'the re-run did not subtract the bytes again')
  t.equal(await releaseStagedMedia(redis, config.redisPrefix, done!.data.staging_key), false, 'releasing again is a no-op')
  t.equal(await releaseStagedMedia(redis, config.redisPrefix, 'staging/other-upload'), true)
  t.equal(await counter(), 0)
})

t.test('private Redis: near maxmemory, unreachable, and evicting', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'rdt-bp-'))
  const bins = await ensureBinaries()
  const server = await startRedis(bins.redisServer, { dataDir: join(dir, 'data'), logFile: join(dir, 'redis.log') })
  t.teardown(async () => {
    await server.stop()
    await rm(dir, { recursive: true, force: true })
  })
  const config = testConfig({ REDIS_URL: server.url, BACKPRESSURE_POLL_MS: '50', REDIS_MEMORY_HIGH_WATER: '0.9' })
  t.teardown(() => dropDb(config))
  const seeded = await seedToken(config)
  const app = await gatewayFor(t, config)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())

  t.test('near maxmemory: every route answers 503, then 201 once there is room', async (t) => {
    t.equal((await putSession(app, seeded.token, 'mem-1')).statusCode, 201)
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1])
    // used / maxmemory = 0.95 >= REDIS_MEMORY_HIGH_WATER (0.9); writes would still fit, but not for long.
    await admin.config('SET', 'maxmemory', String(Math.ceil(used / 0.95)))
    t.teardown(() => admin.config('SET', 'maxmemory', '0'))
    await app.backlog.pollOnce()
    const snap = app.backlog.snapshot()
    t.ok(
      snap.redis.maxMemory > 0 && snap.redis.usedMemory >= 0.9 * snap.redis.maxMemory,
      `used ${snap.redis.usedMemory} of ${snap.redis.maxMemory}`,
    )
    for (const res of [
      await putSession(app, seeded.token, 'mem-2'),
      await putLogs(app, seeded.token, 'mem-2'),
      await putMedia(app, seeded.token, 'mem-2', 'raw', fakeJpeg(1000)),
    ]) {
      t.equal(res.statusCode, 503)
      t.equal(JSON.parse(res.body).error, 'overloaded_redis_memory')
      t.ok(res.headers['retry-after'])
    }
    t.equal((await admin.keys(`${config.redisPrefix}:sessions:s.*`)).length, 1, 'nothing was queued (and the accepted job is still there)')
    await admin.config('SET', 'maxmemory', '0') // 0 = no limit: the check is off
    await app.backlog.pollOnce()
    t.equal((await putSession(app, seeded.token, 'mem-2')).statusCode, 201)
  })

  t.test('Redis down: 503 with Retry-After; back to 201 by itself when Redis returns', async (t) => {
    await server.stop()
    const res = await putSession(app, seeded.token, 'down-1')
    t.equal(res.statusCode, 503)
    t.equal(JSON.parse(res.body).error, 'unavailable')
    t.ok(Number(res.headers['retry-after']) >= 1)
    await app.backlog.pollOnce()
    t.ok(app.backlog.snapshot().error, 'the poller reports its failure (and keeps the last verdict)')
    await server.start()
    // Polls: the point is that the gateway comes back by itself, whenever its client reconnects;
    // asking is the only outside view of that.
    await waitFor(async () => (await putSession(app, seeded.token, 'down-1')).statusCode === 201, {
      what: 'the gateway to recover',
      timeoutMs: 20_000,
    })
    t.pass('accepted again without a restart')
    await waitFor(async () => {
      await app.backlog.pollOnce()
      return app.backlog.snapshot().error === null
    })
    t.pass('the poller recovered too')
  })

  t.test('an evicting Redis is refused by the gateway, the worker, the admin panel and the CLI', async (t) => {
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru')
    t.teardown(() => admin.config('SET', 'maxmemory-policy', 'noeviction'))
    // Each process with its own role's S3 key; the private Redis has no users.
    const env = {
      REDIS_URL: server.url,
      MONGODB_URL: config.mongodbUrl,
      REDIS_PREFIX: config.redisPrefix,
      S3_ENDPOINT: config.s3.endpoint,
      PORT: '0',
      ADMIN_PORT: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'error',
    }
    for (const [role, entry] of [
      ['gateway', 'gateway/server.ts'],
      ['admin', 'admin/server.ts'],
    ] as const) {
      const run = await runProcess(entry, roleProcessEnv(role, env))
      t.equal(run.code, 1, `${entry} exits 1`)
      // A pino line: the quotes come JSON-escaped.
      t.match(run.output, /maxmemory-policy is \W*allkeys-lru/, `${entry} says why`)
    }
    await t.rejects(workerFor(config, 'sessions'), /maxmemory-policy is "allkeys-lru"/, 'the worker refuses to start')
    let err = ''
    const code = await runCli(['workspace', 'create', 'evicting'], {
      out: () => {},
      err: (s) => void (err += s),
      env: roleProcessEnv('cli', env),
    })
    t.equal(code, 1, 'the CLI refuses a write')
    t.match(err, /maxmemory-policy/)
    const { client, db } = await connectMongo(config.mongodbUrl, 1)
    t.teardown(() => client.close())
    t.equal(await collections(db).workspaces.countDocuments({ slug: 'evicting' }), 0, 'before changing anything')
  })
})

/** Runs a process entry point to its exit (bounded: killed after 30 s), with its combined output. */
function runProcess(entry: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.once('error', reject)
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}
