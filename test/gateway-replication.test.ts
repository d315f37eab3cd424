// REDIS_WAIT_REPLICAS (gateway/replication.ts) on the local single Redis, which has no replica:
// WAIT 1 never succeeds, so an upload is queued but answered 503, and the device's retry finds it
// queued (409). With 0, nothing waits. The cluster runs are in faults/redis-cluster.faults.ts.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { buildGateway } from '../gateway/app.ts'
import { jobIds } from '../shared/keys.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { asRole, inspectorQueues, testConfig } from './helpers/env.ts'
import { Redis } from 'ioredis'
import { privateRedis } from './helpers/private-redis.ts'
import { waitFor } from '../testing/wait.ts'

const config = testConfig({ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '50' })
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
const queues = inspectorQueues(t, config)
t.teardown(() => app.close())
const body = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
const put = (guid: string) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${seeded.token}/test_session/${guid}/`,
    payload: body,
    headers: { 'content-type': 'application/json' },
  })

t.test('no replica acknowledges: 503 after the enqueue, and 503 for the retry too (nothing is promised unreplicated)', async (t) => {
  const first = await put('g-wait')
  t.equal(first.statusCode, 503, first.body)
  t.match(JSON.parse(first.body), { error: 'unavailable', message: /redis replication/ })
  t.ok(await queues.sessions.getJob(jobIds.session(seeded.workspaceId, 'g-wait')), 'the job was queued all the same')
  const retry = await put('g-wait')
  t.equal(retry.statusCode, 503, 'a 409 is a promise too: it waits for the replicas like a 201')
  t.equal(await queues.sessions.getJobCounts().then((c) => c.waiting), 1, 'still one job')
})

t.test('REDIS_WAIT_REPLICAS=0 waits for nothing', async (t) => {
  const plain = await buildGateway({ config: asRole({ ...config, redisWaitReplicas: 0 }, 'gateway'), logger: false })
  t.teardown(() => plain.close())
  const res = await plain.inject({
    method: 'PUT',
    url: `/ingest/${seeded.token}/test_session/g-nowait/`,
    payload: body,
    headers: { 'content-type': 'application/json' },
  })
  t.equal(res.statusCode, 201)
})

/**
 * A gateway on a Redis of this test's own with no replica, so its WAIT blocks; `fault` then strikes
 * while it waits, and the answer must be 503 with Retry-After (a device retries), never 500.
 */
async function faultDuringWait(t: Test, fault: (direct: Redis) => Promise<unknown>) {
  const master = await privateRedis(t)
  const cfg = testConfig({ REDIS_URL: master.url, REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '60000' })
  const own = await seedToken(cfg)
  const gw = await buildGateway({ config: asRole(cfg, 'gateway'), logger: false })
  t.teardown(() => gw.close())
  const direct = new Redis(master.url)
  t.teardown(() => direct.disconnect())
  await waitFor(async () => (await gw.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, { what: 'the gateway to be ready' })
  const answer = gw.inject({
    method: 'PUT',
    url: `/ingest/${own.token}/test_session/g-fault/`,
    payload: body,
    headers: { 'content-type': 'application/json' },
  })
  // A poll: the WAIT is blocked inside another process's Redis, seen only by asking it.
  await waitFor(async () => /blocked_clients:[1-9]/.test(await direct.info('clients')), { what: 'the WAIT to block' })
  await fault(direct)
  const res = await answer
  t.equal(res.statusCode, 503, res.body)
  t.match(JSON.parse(res.body), { error: 'unavailable' })
  t.equal(res.headers['retry-after'], '5', 'the device is told when to come back')
}

t.test('a master demoted while the answer waits for its replicas: 503, not 500', async (t) => {
  // A stale master that rejoins a cluster learns it was replaced and turns replica; Redis then ends
  // every WAIT blocked on it with an UNBLOCKED error (found by faults/redis-cluster.faults.ts: one
  // 500 in the stale-master run with REDIS_WAIT_REPLICAS=1). The test demotes it with REPLICAOF.
  const other = await privateRedis(t)
  await faultDuringWait(t, (direct) => direct.call('REPLICAOF', '127.0.0.1', String(other.port)))
})

t.test('the connection lost while the answer waits for its replicas: 503, not 500', async (t) => {
  // The SET before the WAIT was answered, the WAIT was not: ioredis aborts the rest of a pipeline
  // cut in the middle with "Command aborted due to connection close" (found by the master-kill
  // fault with REDIS_WAIT_REPLICAS=1: one 500). Redis drops the gateway's connection, as a dying
  // master does.
  await faultDuringWait(t, async (direct) => {
    const clients = String(await direct.call('CLIENT', 'LIST', 'TYPE', 'normal'))
    const waiting = /^id=(\d+) .* cmd=wait\b/m.exec(clients)?.[1]
    if (!waiting) throw new Error(`no client blocked in WAIT:\n${clients}`)
    await direct.call('CLIENT', 'KILL', 'ID', waiting)
  })
})
