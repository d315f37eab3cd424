// The session endpoint through the real gateway, on real Redis (jobs are inspected in BullMQ).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildGateway } from '../gateway/app.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { keys, jobIds } from '../shared/keys.ts'
import { asRole, inspectorQueues, testConfig } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { Redis } from 'ioredis'
import { idempotencyValue } from '../shared/idempotency.ts'

const config = testConfig()
const sessionBody = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
// The test's checks of what was queued (the gateway's user cannot read jobs back).
const queues = inspectorQueues(t, config)
const redis = new Redis(config.redisUrl)
t.teardown(async () => {
  await app.close()
  redis.disconnect()
})

const put = (url: string, payload: Buffer | string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'PUT', url, payload, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } })
const base = `/ingest/${seeded.token}`

t.test('a real client session is accepted with and without the trailing slash', async (t) => {
  const res = await put(`${base}/test_session/guid-a/`, sessionBody)
  t.equal(res.statusCode, 201, res.body)
  const job = await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'guid-a'))
  t.ok(job, 'job enqueued under the deterministic id')
  t.equal(job?.data.body, sessionBody.toString('utf8'), 'the exact body travels in the job')
  t.equal(job?.data.workspace_id, seeded.workspaceId)
  t.equal(job?.data.token_id, seeded.tokenId)
  t.notOk(JSON.stringify(job?.data).includes(seeded.token), 'the token is not in the job')

  const res2 = await put(`${base}/test_session/guid-b`, sessionBody)
  t.equal(res2.statusCode, 201)
})

t.test('a replay answers 409 and queues nothing new', async (t) => {
  const before = await app.shards[0]!.queues.sessions.getJobCounts()
  const res = await put(`${base}/test_session/guid-a/`, sessionBody)
  t.equal(res.statusCode, 409)
  const after = await app.shards[0]!.queues.sessions.getJobCounts()
  t.same(after, before)
})

t.test('the same GUID with a different body answers 409 and keeps the body as a conflict', async (t) => {
  const other = JSON.stringify({ state: 'COMPLETE', test_profile_id: 'x' })
  const res = await put(`${base}/test_session/guid-a`, other)
  t.equal(res.statusCode, 409)
  const jobs = await queues.sessions.getJobs(['waiting'])
  const conflict = jobs.find((j) => j.data.kind === 'conflict')
  t.ok(conflict, 'a conflict job carries the body')
  t.equal(conflict?.data.body, other)
})

t.test('schema-breaking JSON objects are accepted; other bodies are 400', async (t) => {
  t.equal((await put(`${base}/test_session/odd-1`, '{"state": 42, "$where": {"a.b": [[1]]}}')).statusCode, 201)
  t.equal((await put(`${base}/test_session/odd-2`, '{"__proto__": {"x": 1}}')).statusCode, 201, '__proto__ is data, not an attack')
  t.equal((await put(`${base}/test_session/odd-3`, 'not json')).statusCode, 400)
  t.equal((await put(`${base}/test_session/odd-4`, '[1,2]')).statusCode, 400, 'arrays are not sessions')
  t.equal((await put(`${base}/test_session/odd-5`, '"str"')).statusCode, 400)
  t.equal((await put(`${base}/test_session/odd-6`, '')).statusCode, 400, 'an empty body is not JSON')
  t.equal(
    (await put(`${base}/test_session/odd-7`, '{"a":1}', { 'content-type': 'text/plain' })).statusCode,
    201,
    'a wrong content type is tolerated',
  )
  const noType = await app.inject({ method: 'PUT', url: `${base}/test_session/odd-8`, payload: '{"a":1}' })
  t.equal(noType.statusCode, 201, 'a missing content type is tolerated')
})

t.test('a body that carries the DSN keeps everything but the token', async (t) => {
  const body = JSON.stringify({ configuration: { cloudworks_dns: `https://rdt.example.org/ingest/${seeded.token}` } })
  t.equal((await put(`${base}/test_session/dsn-1`, body)).statusCode, 201)
  const job = await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'dsn-1'))
  t.notOk(job?.data.body.includes(seeded.token), 'the token is not stored')
  t.match(job?.data.body, 'https://rdt.example.org/ingest/[redacted-dsn-token]')
  t.equal((await put(`${base}/test_session/dsn-1`, body)).statusCode, 409, 'replays are still recognised')
})

t.test('gzip bodies are inflated; other encodings are refused clearly', async (t) => {
  const { gzipSync } = await import('node:zlib')
  const res = await put(`${base}/test_session/gz-1`, gzipSync(sessionBody), { 'content-encoding': 'gzip' })
  t.equal(res.statusCode, 201)
  const job = await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'gz-1'))
  t.equal(job?.data.body, sessionBody.toString('utf8'))
  t.equal((await put(`${base}/test_session/gz-2`, 'xx', { 'content-encoding': 'br' })).statusCode, 415)
})

t.test('ids are validated: 128 characters pass, 129 and odd characters are 400', async (t) => {
  t.equal((await put(`${base}/test_session/${'a'.repeat(128)}`, '{}')).statusCode, 201)
  t.equal((await put(`${base}/test_session/${'a'.repeat(129)}`, '{}')).statusCode, 400)
  t.equal((await put(`${base}/test_session/a.b`, '{}')).statusCode, 400)
  t.equal((await put(`${base}/test_session/a%2Fb`, '{}')).statusCode, 400)
  t.equal((await put(`${base}/test_session/%00x`, '{}')).statusCode, 400)
})

t.test('bodies over the limit are 413', async (t) => {
  const big = '{"x":"' + 'a'.repeat(config.maxJsonBytes) + '"}'
  t.equal((await put(`${base}/test_session/big-1`, big)).statusCode, 413)
})

t.test('twenty concurrent identical PUTs of a new GUID give one 201 and nineteen 409s', async (t) => {
  const results = await Promise.all(Array.from({ length: 20 }, () => put(`${base}/test_session/race-1`, sessionBody)))
  const codes = results.map((r) => r.statusCode).sort()
  t.same(codes, [201, ...Array(19).fill(409)])
})

t.test('a claim whose request died before the enqueue is free again after the pending timeout', async (t) => {
  // Simulate a gateway killed between the idempotency key and the enqueue.
  const k = keys(config.redisPrefix)
  const key = k.idempotency('s', seeded.workspaceId, 'crashed-1')
  await redis.set(key, idempotencyValue.pending('0'.repeat(64), Date.now() - config.pendingTimeoutMs - 1))
  const res = await put(`${base}/test_session/crashed-1`, sessionBody)
  t.equal(res.statusCode, 201, 'the retried PUT is accepted, not 409')
  t.ok(await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'crashed-1')))
})

t.test('a fresh pending claim with no job is waited on, never answered 409', async (t) => {
  const k = keys(config.redisPrefix)
  const key = k.idempotency('s', seeded.workspaceId, 'crashed-2')
  // Pending "now": the gateway must wait for it to resolve; it expires after the timeout.
  await redis.set(key, idempotencyValue.pending('0'.repeat(64), Date.now()))
  const cfg = testConfig({ REDIS_PREFIX: config.redisPrefix, PENDING_TIMEOUT_MS: '300' })
  const fast = await buildGateway({ config: asRole({ ...cfg, mongodbUrl: config.mongodbUrl }, 'gateway'), logger: false })
  t.teardown(() => fast.close())
  const res = await fast.inject({ method: 'PUT', url: `${base}/test_session/crashed-2`, payload: sessionBody })
  t.equal(res.statusCode, 201)
})

t.test('tokens: unknown, wrong permission, inactive workspace, expired and revoked get 403', async (t) => {
  t.equal((await put(`/ingest/rdt_unknown/test_session/x1`, '{}')).statusCode, 403)
  t.equal((await put(`/ingest/bad.token/test_session/x1`, '{}')).statusCode, 403)
  const logsOnly = await seedToken(config, { permissions: ['logs'] })
  t.equal((await put(`/ingest/${logsOnly.token}/test_session/x1`, '{}')).statusCode, 403)
  t.equal((await put(`/ingest/${logsOnly.token}/test_session/x1/logs`, '{"entries":[]}')).statusCode, 201)
  const inactive = await seedToken(config, { active: false })
  t.equal((await put(`/ingest/${inactive.token}/test_session/x1`, '{}')).statusCode, 403)
  const expired = await seedToken(config, { expiresAt: new Date(Date.now() - 1000) })
  t.equal((await put(`/ingest/${expired.token}/test_session/x1`, '{}')).statusCode, 403)

  const victim = await seedToken(config)
  t.equal((await put(`/ingest/${victim.token}/test_session/v1`, '{}')).statusCode, 201, 'works (and is now cached)')
  // Revoke in MongoDB, then mirror + publish the way the CLI does.
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  await collections(db).tokens.updateOne({ _id: victim.tokenId }, { $set: { revoked_at: new Date() } })
  const { syncTokenMirror } = await import('../shared/token-registry.ts')
  const started = Date.now()
  await syncTokenMirror(db, redis, config.redisPrefix)
  await client.close()
  // Pushed, not polled: the cached entry is dropped when the change is announced. How fast is a
  // figure for the benchmark (shared machines are noisy), so the deadline here is generous. A poll:
  // the gateway drops the entry with no event a test can hear.
  await waitFor(async () => (await put(`/ingest/${victim.token}/test_session/v2`, '{}')).statusCode === 403, {
    timeoutMs: 10_000,
    intervalMs: 20,
    what: 'revocation',
  })
  t.pass(`revocation seen ${Date.now() - started} ms after the change was announced`)
})

t.test('an unloaded token mirror is 503, not 403', async (t) => {
  const cfg = testConfig()
  const fresh = await buildGateway({ config: asRole(cfg, 'gateway'), logger: false })
  t.teardown(() => fresh.close())
  const res = await fresh.inject({ method: 'PUT', url: `/ingest/rdt_whatever/test_session/x`, payload: '{}' })
  t.equal(res.statusCode, 503)
  t.ok(res.headers['retry-after'])
})

t.test('health endpoints', async (t) => {
  t.equal((await app.inject('/healthz')).statusCode, 200)
  t.equal((await app.inject('/readyz')).statusCode, 200)
})
