// Shards on one Redis (REDIS_SHARDS=3): a workspace's uploads are claimed and queued under its
// shard's prefix, a worker consumes every shard, a workspace on a shard beyond REDIS_SHARDS gets
// 503 (never queued where no worker looks), new workspaces spread over the shards, and
// `workspace move-shard` sends new uploads to the new shard and finishes once the old one has
// drained. The same code on a Redis Cluster is proven by faults/redis-cluster.faults.ts.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { buildGateway } from '../gateway/app.ts'
import { buildWorker } from '../worker/app.ts'
import { runCli } from '../cli/run.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { jobIds, keys } from '../shared/keys.ts'
import { shardPrefix } from '../shared/redis-shards.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { inspectorEnv } from '../stack/roles.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { captureLogger } from './helpers/worker-harness.ts'

const config = testConfig({ REDIS_SHARDS: '3' })
const sessionBody = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
const { client: mongo, db } = await connectMongo(config.mongodbUrl, 1)
const redis = new Redis(config.redisUrl)
const gateway = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
const worker = await buildWorker({ config: asRole(config, 'worker'), logger: captureLogger().logger, tokenSyncIntervalMs: 3_600_000 })
t.teardown(async () => {
  await worker.close()
  await gateway.close()
  redis.disconnect()
  await mongo.close()
})

const put = (token: string, guid: string) =>
  gateway.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${guid}/`,
    payload: sessionBody,
    headers: { 'content-type': 'application/json' },
  })

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const env = { ...inspectorEnv(process.env), REDIS_PREFIX: config.redisPrefix, REDIS_SHARDS: '3', MONGODB_URL: config.mongodbUrl }
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (err += s), env })
  return { code, out, err }
}

t.test('an upload is claimed and queued under its workspace shard, and a worker of every shard stores it', async (t) => {
  const seeded = await seedToken(config, { shard: 2 })
  const res = await put(seeded.token, 'g-shard2')
  t.equal(res.statusCode, 201, res.body)
  const k2 = keys(shardPrefix(config.redisPrefix, 2))
  t.ok(await redis.exists(k2.idempotency('s', seeded.workspaceId, 'g-shard2')), 'the claim is in shard 2')
  t.ok(await redis.exists(k2.job('sessions', jobIds.session(seeded.workspaceId, 'g-shard2'))), 'the job is in shard 2')
  t.notOk(await redis.exists(keys(config.redisPrefix).idempotency('s', seeded.workspaceId, 'g-shard2')), 'nothing in shard 0')
  t.equal((await put(seeded.token, 'g-shard2')).statusCode, 409, 'a replay is answered from the same shard')

  t.equal(worker.workers.get('sessions')!.length, 3, 'one BullMQ Worker per shard')
  const sessions = collections(db).sessions
  await waitFor(async () => (await sessions.countDocuments({ workspace_id: seeded.workspaceId, session_id: 'g-shard2' })) === 1, {
    what: 'the session stored',
  })
})

t.test('a workspace on a shard beyond REDIS_SHARDS gets 503, and nothing is queued', async (t) => {
  const seeded = await seedToken(config, { shard: 5 })
  const res = await put(seeded.token, 'g-nowhere')
  t.equal(res.statusCode, 503, 'the device retries until the operator fixes REDIS_SHARDS')
  for (let shard = 0; shard < 6; shard++) {
    const k = keys(shardPrefix(config.redisPrefix, shard))
    t.notOk(await redis.exists(k.idempotency('s', seeded.workspaceId, 'g-nowhere')), `no claim in shard ${shard}`)
  }
})

t.test('new workspaces spread over the shards; move-shard sends new uploads to the new shard and finishes', async (t) => {
  const made: number[] = []
  for (const slug of ['spread-a', 'spread-b', 'spread-c']) {
    const r = await cli(['workspace', 'create', slug, '--json'])
    t.equal(r.code, 0, r.err)
    made.push((JSON.parse(r.out) as { redis_shard: number }).redis_shard)
  }
  // Shard 2 already has a workspace from the first test (5 is out of range and counts for none):
  // 0 (a tie, the lowest), then 1, then 0 again.
  t.same(made, [0, 1, 0], 'each new workspace goes to the least used shard')

  const tok = await cli(['token', 'create', '--workspace', 'spread-a', '--json'])
  t.equal(tok.code, 0, tok.err)
  const { token } = JSON.parse(tok.out) as { token: string }
  const before = (JSON.parse((await cli(['workspace', 'list', '--json'])).out) as { slug: string; id: string; redis_shard: number }[]).find(
    (w) => w.slug === 'spread-a',
  )!
  t.equal((await put(token, 'g-before')).statusCode, 201)
  const to = (before.redis_shard + 1) % 3
  const moved = await cli(['workspace', 'move-shard', 'spread-a', String(to), '--json'])
  t.equal(moved.code, 0, moved.err)
  t.match(JSON.parse(moved.out), { from: before.redis_shard, to, redis_shard: to, redis_shard_moving_from: null, pending_jobs: 0 })
  t.equal((await put(token, 'g-after')).statusCode, 201)
  const kTo = keys(shardPrefix(config.redisPrefix, to))
  t.ok(await redis.exists(kTo.idempotency('s', before.id, 'g-after')), 'the upload after the move is claimed in the new shard')
  const sessions = collections(db).sessions
  await waitFor(async () => (await sessions.countDocuments({ workspace_id: before.id })) === 2, { what: 'both sessions stored' })
  const audit = await collections(db).audit.findOne({ action: 'workspace.move-shard', 'target.workspace_id': before.id })
  t.match(audit?.target, { from: before.redis_shard, to })
  const again = await cli(['workspace', 'move-shard', 'spread-a', String(to)])
  t.equal(again.code, 1, 'moving to the shard it is on is refused')
  t.match(again.err, /already on shard/)
  const bad = await cli(['workspace', 'move-shard', 'spread-a', '3'])
  t.equal(bad.code, 1)
  t.match(bad.err, /0 to 2/)
  // The queues of every shard close with the test's worker; nothing is left in the old shard.
  const old = new Queue('sessions', { connection: redis, prefix: shardPrefix(config.redisPrefix, before.redis_shard) })
  t.teardown(() => old.close())
  t.equal(await old.getWaitingCount(), 0)
})
