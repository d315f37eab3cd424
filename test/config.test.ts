// Config parsing that needs no services: per-queue worker concurrency, the hostile-client limits.
import t from 'tap'
import { loadConfig } from '../shared/config.ts'

const env = {
  REDIS_URL: 'redis://127.0.0.1:1',
  MONGODB_URL: 'mongodb://127.0.0.1:1/x',
  S3_ENDPOINT: 'http://127.0.0.1:1',
  S3_ACCESS_KEY: 'a',
  S3_SECRET_KEY: 'b',
}

t.test('WORKER_CONCURRENCY: per-queue defaults, one value for all, a per-queue override wins', async (t) => {
  t.same(
    loadConfig(env, {}).workerConcurrency,
    { sessions: 256, logs: 64, media: 64 },
    'defaults: session jobs are small, logs and photos hold more memory',
  )
  t.same(
    loadConfig({ ...env, WORKER_CONCURRENCY: '16' }, {}).workerConcurrency,
    { sessions: 16, logs: 16, media: 16 },
    'WORKER_CONCURRENCY sets every queue',
  )
  t.same(
    loadConfig({ ...env, WORKER_CONCURRENCY: '16', WORKER_CONCURRENCY_MEDIA: '4' }, {}).workerConcurrency,
    { sessions: 16, logs: 16, media: 4 },
    'WORKER_CONCURRENCY_MEDIA overrides WORKER_CONCURRENCY for that queue only',
  )
  t.same(loadConfig({ ...env, WORKER_CONCURRENCY_SESSIONS: '512' }, {}).workerConcurrency, { sessions: 512, logs: 64, media: 64 })
  t.throws(() => loadConfig({ ...env, WORKER_CONCURRENCY: 'lots' }, {}), { message: /WORKER_CONCURRENCY/ })
  t.throws(() => loadConfig({ ...env, WORKER_CONCURRENCY_LOGS: '0' }, {}), { message: /WORKER_CONCURRENCY_LOGS/ })
})

t.test('hostile-client limits (issue 15): defaults, and every invalid value named', async (t) => {
  const c = loadConfig(env, {})
  t.match(c, {
    drainMaxBytes: 64 * 1024 * 1024,
    drainTimeoutMs: 30_000,
    requestTimeoutMs: 600_000,
    headersTimeoutMs: 30_000,
    keepAliveTimeoutMs: 72_000,
    maxInFlightPerToken: 32,
    workspaceBytesPerMinute: 256 * 1024 * 1024,
    logsMaxEntries: 10_000,
  })
  t.equal(
    loadConfig({ ...env, DRAIN_MAX_BYTES: '0', MAX_IN_FLIGHT_PER_TOKEN: '0', WORKSPACE_BYTES_PER_MINUTE: '0' }, {}).workspaceBytesPerMinute,
    0,
    '0 turns the drain, the cap and the budget off',
  )
  // A budget below the largest body would refuse that body for ever (429 is retried).
  t.throws(() => loadConfig({ ...env, WORKSPACE_BYTES_PER_MINUTE: String(10 * 1024 * 1024) }, {}), {
    message: /WORKSPACE_BYTES_PER_MINUTE must be 0 \(off\) or at least the largest body allowed \(52428800 bytes/,
  })
  t.equal(
    loadConfig({ ...env, WORKSPACE_BYTES_PER_MINUTE: String(10 * 1024 * 1024), MAX_MEDIA_BYTES: String(8 * 1024 * 1024) }, {})
      .workspaceBytesPerMinute,
    10 * 1024 * 1024,
    'fine once the photo limit is below it',
  )
  t.throws(() => loadConfig({ ...env, HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '30000' }, {}), {
    message: /HEADERS_TIMEOUT_MS must not be more than REQUEST_TIMEOUT_MS/,
  })
  t.throws(() => loadConfig({ ...env, REQUEST_TIMEOUT_MS: '500' }, {}), { message: /REQUEST_TIMEOUT_MS must be between 1000/ })
  t.throws(() => loadConfig({ ...env, REQUEST_TIMEOUT_MS: '10m' }, {}), { message: /REQUEST_TIMEOUT_MS must be a whole number/ })
  t.throws(() => loadConfig({ ...env, KEEP_ALIVE_TIMEOUT_MS: '0' }, {}), { message: /KEEP_ALIVE_TIMEOUT_MS/ })
  t.throws(() => loadConfig({ ...env, DRAIN_TIMEOUT_MS: '-1' }, {}), { message: /DRAIN_TIMEOUT_MS/ })
  t.throws(() => loadConfig({ ...env, DRAIN_MAX_BYTES: '64MiB' }, {}), { message: /DRAIN_MAX_BYTES/ })
  t.throws(() => loadConfig({ ...env, MAX_IN_FLIGHT_PER_TOKEN: 'many' }, {}), { message: /MAX_IN_FLIGHT_PER_TOKEN/ })
  t.throws(() => loadConfig({ ...env, LOGS_MAX_ENTRIES: '0' }, {}), { message: /LOGS_MAX_ENTRIES must be between 1/ })
})
