// Gateway metrics: after real requests over HTTP, the separate metrics listener shows the
// counters moved (by route pattern, status and refusal reason), and the DSN token never appears.
import { deleteKeysWithPrefix } from '../testing/redis-keys.ts'
import t from 'tap'
import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { buildGateway } from '../gateway/app.ts'
import { loadTestConfig, OFFLINE_ENV } from '../testing/config.ts'
import { startMetricsServer } from '../shared/metrics-server.ts'
import { freePort } from '../stack/ports.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { fixturesDir } from '../testing/fixtures.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg } from '../testing/media.ts'
import { scrape, sumOf } from '../testing/prometheus.ts'

const config = testConfig()
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as AddressInfo).port
const metricsPort = await freePort()
const metrics = await startMetricsServer({ port: metricsPort, host: '127.0.0.1', registry: app.metrics })
if (!metrics) throw new Error('metrics listener did not start')
const redis = new Redis(config.redisUrl)
t.teardown(async () => {
  await metrics.close()
  await app.close()
  // Only this file's keys (its own prefix).
  await deleteKeysWithPrefix(redis, config.redisPrefix)
  redis.disconnect()
})

const session = readFileSync(new URL('session-rdtoolkit.json', fixturesDir))
const logs = readFileSync(new URL('logs-rdtoolkit.json', fixturesDir))
const base = `http://127.0.0.1:${port}/ingest/${seeded.token}`
const json = { 'content-type': 'application/json; charset=utf-8' }
const put = async (url: string, body: Uint8Array<ArrayBuffer> | string, headers: Record<string, string> = json) =>
  (await fetch(url, { method: 'PUT', body, headers })).status
const SESSION_ROUTE = '/ingest/:dsn/test_session/:session'
// A well-formed token that does not exist: it must not show up either.
const unknownToken = 'rdt_' + 'x'.repeat(40)

t.test('counters move by route pattern, status and reason; the token never appears', async (t) => {
  t.equal(await put(`${base}/test_session/metrics-1/`, new Uint8Array(session)), 201)
  t.equal(await put(`${base}/test_session/metrics-1/`, new Uint8Array(session)), 409)
  t.equal(await put(`${base}/test_session/metrics-2/`, 'not json'), 400)
  t.equal(await put(`${base}/test_session/bad.id/`, new Uint8Array(session)), 400)
  t.equal(await put(`http://127.0.0.1:${port}/ingest/${unknownToken}/test_session/metrics-3/`, new Uint8Array(session)), 403)
  t.equal(await put(`${base}/test_session/metrics-1/logs/`, new Uint8Array(logs)), 201)
  const jpeg = fakeJpeg(200_000)
  t.equal(await put(`${base}/test_session/metrics-1/media/cropped/`, new Uint8Array(jpeg), { 'content-type': 'image/jpeg' }), 201)
  t.equal((await fetch(`${base}/no/such/route`)).status, 404)

  const { text, samples, contentType } = await scrape(metrics.port)
  t.match(contentType, /^text\/plain/, 'Prometheus text format')
  const requests = (route: string, status: string) => sumOf(samples, 'rdt_gateway_requests_total', { route, status })
  t.equal(requests(SESSION_ROUTE, '201'), 1)
  t.equal(requests(SESSION_ROUTE, '409'), 1)
  t.equal(requests(SESSION_ROUTE, '400'), 2)
  t.equal(requests(SESSION_ROUTE, '403'), 1)
  t.equal(requests(`${SESSION_ROUTE}/logs`, '201'), 1)
  t.equal(requests(`${SESSION_ROUTE}/media/:media`, '201'), 1)
  t.equal(requests('unmatched', '404'), 1, 'an unknown URL is counted under a fixed word')

  const refusals = (labels: Record<string, string>) => sumOf(samples, 'rdt_gateway_refusals_total', labels)
  t.equal(refusals({ route: SESSION_ROUTE, status: '400', reason: 'invalid_json' }), 1)
  t.equal(refusals({ route: SESSION_ROUTE, status: '400', reason: 'invalid_id' }), 1)
  t.equal(refusals({ route: SESSION_ROUTE, status: '403', reason: 'forbidden' }), 1)
  t.equal(refusals({ route: 'unmatched', status: '404', reason: 'not_found' }), 1)
  t.equal(refusals({ status: '409' }), 0, 'a 409 is success for the client, not a refusal')
  t.equal(refusals({ status: '201' }), 0)

  t.equal(sumOf(samples, 'rdt_gateway_request_duration_seconds_count', { route: SESSION_ROUTE, status: '201' }), 1, 'latency observed')
  t.equal(sumOf(samples, 'rdt_gateway_request_duration_seconds_bucket', { route: SESSION_ROUTE, status: '201', le: '+Inf' }), 1)
  t.equal(sumOf(samples, 'rdt_gateway_accepted_request_bytes_total', { route: SESSION_ROUTE }), session.length)
  t.equal(sumOf(samples, 'rdt_gateway_accepted_request_bytes_total', { route: `${SESSION_ROUTE}/media/:media` }), jpeg.length)

  // Six requests were authenticated, with two tokens: at least one read each, at most one per request
  // (the cache keeps nothing until its subscription is confirmed, which may be after the first).
  const reads = sumOf(samples, 'rdt_gateway_token_reads_total')
  t.ok(reads >= 2 && reads <= 6, `token reads sent to Redis: ${reads}`)

  // No worker runs here, so the accepted jobs are still waiting.
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'sessions', state: 'waiting' }), 1)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'logs', state: 'waiting' }), 1)
  t.equal(sumOf(samples, 'rdt_queue_jobs', { queue: 'media', state: 'waiting' }), 1)

  t.notOk(text.includes(seeded.token), 'the DSN token is not in the metrics')
  t.notOk(text.includes(unknownToken), 'an unknown token is not in the metrics either')
  const routes = new Set(samples.flatMap((s) => (s.labels.route === undefined ? [] : [s.labels.route])))
  for (const r of routes) t.ok(r === 'unmatched' || /^\/[a-z_/:]*$/.test(r), `route label is a pattern: ${r}`)
})

t.test('backpressure figures: staged photo bytes, Redis memory, refusal state', async (t) => {
  // The poller refreshes every BACKPRESSURE_POLL_MS, so wait for it to have seen the photo above:
  // a poll, as the poller announces nothing.
  const { samples } = await waitFor(
    async () => {
      const s = await scrape(metrics.port)
      return sumOf(s.samples, 'rdt_staged_media_bytes') === 200_000 ? s : null
    },
    { what: 'staged bytes to reach the gauge' },
  )
  t.equal(sumOf(samples, 'rdt_staged_media_bytes'), 200_000, 'the staged photo, not yet processed by a worker')
  t.ok(sumOf(samples, 'rdt_redis_memory_bytes', { kind: 'used' }) > 0, 'Redis used_memory')
  t.equal(sumOf(samples, 'rdt_gateway_backpressure', { queue: 'sessions', reason: 'backlog' }), 0, 'not refusing')
  t.equal(samples.filter((s) => s.name === 'rdt_gateway_backpressure').length, 9, 'one series per queue and reason')
})

t.test('a malformed URL is counted as bad_url, without its token', async (t) => {
  const before = sumOf((await scrape(metrics.port)).samples, 'rdt_gateway_refusals_total', { reason: 'bad_url' })
  t.equal((await fetch(`${base}/test_session/%E0%A4%A/`, { method: 'PUT', body: '{}' })).status, 400)
  const { text, samples } = await scrape(metrics.port)
  t.equal(sumOf(samples, 'rdt_gateway_refusals_total', { reason: 'bad_url' }) - before, 1)
  t.notOk(text.includes(seeded.token))
})

t.test('metrics are not served on the public port', async (t) => {
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 404)
})

t.test('the metrics listener: /healthz, unknown paths, methods', async (t) => {
  const m = `http://127.0.0.1:${metrics.port}`
  t.equal((await fetch(`${m}/healthz`)).status, 200)
  t.equal((await fetch(`${m}/other`)).status, 404)
  t.equal((await fetch(`${m}/metrics`, { method: 'POST' })).status, 405)
})

t.test('/healthz reports what the process says', async (t) => {
  let healthy = true
  const p = await freePort()
  const s = await startMetricsServer({ port: p, host: '127.0.0.1', registry: app.metrics, healthy: () => healthy })
  t.teardown(() => s?.close())
  t.equal((await fetch(`http://127.0.0.1:${p}/healthz`)).status, 200)
  healthy = false
  t.equal((await fetch(`http://127.0.0.1:${p}/healthz`)).status, 503)
})

t.test('METRICS_PORT: 0 disables, a taken port is logged and does not stop the process', async (t) => {
  t.equal(await startMetricsServer({ port: 0, host: '127.0.0.1', registry: app.metrics }), null)
  const lines: string[] = []
  const logger = pino({}, new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }))
  t.equal(await startMetricsServer({ port: metrics.port, host: '127.0.0.1', registry: app.metrics, logger }), null)
  t.match(lines.join(''), /metrics listener could not start/)

  const env = OFFLINE_ENV
  t.equal(loadTestConfig(env).metricsPort, null, 'unset: the process default')
  t.equal(loadTestConfig({ ...env, METRICS_PORT: '0' }).metricsPort, 0)
  t.equal(loadTestConfig({ ...env, METRICS_PORT: '9999' }).metricsPort, 9999)
  t.throws(() => loadTestConfig({ ...env, METRICS_PORT: 'abc' }), { message: /METRICS_PORT/ })
  t.throws(() => loadTestConfig({ ...env, METRICS_PORT: '70000' }), { message: /METRICS_PORT/ })
})
