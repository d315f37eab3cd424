// The logs endpoint: a byte-identical replay is answered 201 and queued once.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildGateway } from '../gateway/app.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'

const config = testConfig()
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
t.teardown(() => app.close())
const logs = readFileSync(new URL('logs-rdtoolkit.json', fixturesDir))
const put = (url: string, payload: Buffer | string) =>
  app.inject({ method: 'PUT', url, payload, headers: { 'content-type': 'application/json; charset=utf-8' } })

t.test('a logs batch is queued once however often it is replayed', async (t) => {
  const url = `/ingest/${seeded.token}/test_session/s1/logs/`
  for (let i = 0; i < 3; i++) t.equal((await put(url, logs)).statusCode, 201)
  const concurrent = await Promise.all(Array.from({ length: 10 }, () => put(url, logs)))
  t.same(
    concurrent.map((r) => r.statusCode),
    Array(10).fill(201),
  )
  const counts = await app.shards[0]!.queues.logs.getJobCounts()
  t.equal(counts.waiting, 1, 'one job for one batch')
})

t.test('a different batch for the same session is a new job', async (t) => {
  const url = `/ingest/${seeded.token}/test_session/s1/logs`
  const other = JSON.stringify({ entries: [{ timestamp: '2021-01-25T11:02:41.563+00:00', tag: 't', message: 'm' }] })
  t.equal((await put(url, other)).statusCode, 201)
  t.equal((await app.shards[0]!.queues.logs.getJobCounts()).waiting, 2)
})

t.test('logs bodies: arrays are fine, non-JSON is 400', async (t) => {
  t.equal((await put(`/ingest/${seeded.token}/test_session/s2/logs`, '[]')).statusCode, 201)
  t.equal((await put(`/ingest/${seeded.token}/test_session/s2/logs`, '{oops')).statusCode, 400)
  t.equal((await put(`/ingest/${seeded.token}/test_session/s2/logs`, '12')).statusCode, 400)
})
