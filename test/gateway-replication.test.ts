// REDIS_WAIT_REPLICAS (gateway/replication.ts) on the local single Redis, which has no replica:
// WAIT 1 never succeeds, so an upload is queued but answered 503, and the device's retry finds it
// queued (409). With 0, nothing waits. The cluster runs are in faults/redis-cluster.faults.ts.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildGateway } from '../gateway/app.ts'
import { jobIds } from '../shared/keys.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { asRole, inspectorQueues, testConfig } from './helpers/env.ts'

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
