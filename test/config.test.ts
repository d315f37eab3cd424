// Config parsing that needs no services: per-queue worker concurrency.
import t from 'tap'
import { loadConfig } from '../shared/config.ts'

const env = { REDIS_URL: 'redis://127.0.0.1:1', MONGODB_URL: 'mongodb://127.0.0.1:1/x', S3_ENDPOINT: 'http://127.0.0.1:1', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b' }

t.test('WORKER_CONCURRENCY: per-queue defaults, one value for all, a per-queue override wins', async (t) => {
  t.same(loadConfig(env, {}).workerConcurrency, { sessions: 256, logs: 64, media: 64 }, 'defaults: session jobs are small, logs and photos hold more memory')
  t.same(loadConfig({ ...env, WORKER_CONCURRENCY: '16' }, {}).workerConcurrency, { sessions: 16, logs: 16, media: 16 }, 'WORKER_CONCURRENCY sets every queue')
  t.same(
    loadConfig({ ...env, WORKER_CONCURRENCY: '16', WORKER_CONCURRENCY_MEDIA: '4' }, {}).workerConcurrency,
    { sessions: 16, logs: 16, media: 4 },
    'WORKER_CONCURRENCY_MEDIA overrides WORKER_CONCURRENCY for that queue only',
  )
  t.same(loadConfig({ ...env, WORKER_CONCURRENCY_SESSIONS: '512' }, {}).workerConcurrency, { sessions: 512, logs: 64, media: 64 })
  t.throws(() => loadConfig({ ...env, WORKER_CONCURRENCY: 'lots' }, {}), { message: /WORKER_CONCURRENCY/ })
  t.throws(() => loadConfig({ ...env, WORKER_CONCURRENCY_LOGS: '0' }, {}), { message: /WORKER_CONCURRENCY_LOGS/ })
})
