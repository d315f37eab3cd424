// Config parsing that needs no services: each process's own loader, per-queue worker concurrency,
// the hostile-client limits.
import t from 'tap'
import { OFFLINE_ENV } from '../testing/config.ts'
import { loadAdminServerConfig } from '../admin/config.ts'
import { loadCliConfig } from '../cli/config.ts'
import { loadGatewayConfig } from '../gateway/config.ts'
import { ConfigError } from '../shared/config-vars.ts'
import { loadWorkerConfig } from '../worker/config.ts'

const env = OFFLINE_ENV

t.test('each process asks only for what it uses', async (t) => {
  const redis = { REDIS_URL: env.REDIS_URL }
  const mongo = { MONGODB_URL: env.MONGODB_URL }
  const s3 = { S3_ENDPOINT: env.S3_ENDPOINT, S3_ACCESS_KEY: env.S3_ACCESS_KEY, S3_SECRET_KEY: env.S3_SECRET_KEY }
  const cli = loadCliConfig({ ...redis, ...mongo })
  t.same(
    Object.keys(cli).sort(),
    [
      'deletionBatchSize',
      'mongoWriteConcern',
      'mongodbUrl',
      'publicUrl',
      'redisClusterNodes',
      'redisPrefix',
      'redisShards',
      'redisUrl',
      's3',
    ],
    'the CLI: no S3 key needed',
  )
  t.equal(cli.s3, null, 'object storage is optional: only `session delete` and `workspace purge` use it (and refuse without it)')
  t.equal(loadCliConfig({ ...redis, ...mongo, ...s3 }).s3?.accessKey, env.S3_ACCESS_KEY, 'read when given')
  t.throws(() => loadCliConfig({ ...redis, ...mongo, S3_ENDPOINT: env.S3_ENDPOINT }), { name: 'ConfigError', variable: 'S3_ACCESS_KEY' })
  t.equal(cli.publicUrl, 'http://127.0.0.1:8080', 'PUBLIC_URL defaults to the gateway port')
  t.equal(loadCliConfig({ ...redis, ...mongo, PORT: '9000', PUBLIC_URL: 'https://rdt.example.org/' }).publicUrl, 'https://rdt.example.org')
  const gateway = loadGatewayConfig({ ...redis, ...s3 })
  t.notOk('mongodbUrl' in gateway, 'the gateway: no MongoDB')
  t.notOk('workerQueues' in gateway)
  const worker = loadWorkerConfig({ ...redis, ...mongo, ...s3 })
  t.notOk('maxJsonBytes' in worker, 'the worker: none of the gateway limits')
  t.notOk('publicUrl' in worker)
  const admin = loadAdminServerConfig({ ...redis, ...mongo, ...s3 })
  t.equal(admin.adminPort, 8081)
  t.notOk('workerConcurrency' in admin)
  // What a process needs and lacks is named.
  t.throws(() => loadWorkerConfig({ ...redis, ...s3 }), { name: 'ConfigError', code: 'invalid_config', variable: 'MONGODB_URL' })
  t.throws(() => loadGatewayConfig({ ...redis, S3_ENDPOINT: env.S3_ENDPOINT }), { name: 'ConfigError', variable: 'S3_ACCESS_KEY' })
  t.throws(() => loadAdminServerConfig({ ...mongo, ...s3 }), { name: 'ConfigError', variable: 'REDIS_URL' })
  t.throws(() => loadCliConfig({ ...redis, ...mongo, PUBLIC_URL: 'ftp://x' }), { name: 'ConfigError', variable: 'PUBLIC_URL' })
})

t.test('Redis Cluster and shards: the seed list, the shard count, and a hash-tag prefix when either is used', async (t) => {
  const single = loadCliConfig(env)
  t.equal(single.redisClusterNodes, null, 'one server unless REDIS_CLUSTER_NODES is set')
  t.equal(single.redisShards, 1)
  const cluster = loadCliConfig({ ...env, REDIS_CLUSTER_NODES: 'r1:7000, 10.0.0.2:7001,[::1]:7002', REDIS_SHARDS: '3' })
  t.same(cluster.redisClusterNodes, [
    { host: 'r1', port: 7000 },
    { host: '10.0.0.2', port: 7001 },
    { host: '::1', port: 7002 },
  ])
  t.equal(cluster.redisShards, 3)
  for (const bad of ['r1', 'r1:0', 'r1:70000', 'r1:7000,,r2:7000', 'user@r1:7000'])
    t.throws(() => loadCliConfig({ ...env, REDIS_CLUSTER_NODES: bad }), { name: 'ConfigError', variable: 'REDIS_CLUSTER_NODES' }, bad)
  for (const bad of ['0', '65', 'x'])
    t.throws(() => loadCliConfig({ ...env, REDIS_SHARDS: bad }), { name: 'ConfigError', variable: 'REDIS_SHARDS' }, bad)
  // Every key of a shard must hash to one slot, so the prefix must be one whole hash tag.
  t.throws(() => loadCliConfig({ ...env, REDIS_PREFIX: 'rdt', REDIS_SHARDS: '2' }), { variable: 'REDIS_PREFIX', message: /hash tag/ })
  t.throws(() => loadCliConfig({ ...env, REDIS_PREFIX: 'x{rdt}', REDIS_CLUSTER_NODES: 'r1:7000' }), {
    name: 'ConfigError',
    variable: 'REDIS_PREFIX',
  })
  t.equal(loadCliConfig({ ...env, REDIS_PREFIX: 'rdt' }).redisPrefix, 'rdt', 'a plain prefix is still fine on one server with one shard')
  // The worker consumes every shard unless told otherwise, and only shards that exist.
  t.same(loadWorkerConfig({ ...env, REDIS_SHARDS: '3' }).workerShards, [0, 1, 2])
  t.same(loadWorkerConfig({ ...env, REDIS_SHARDS: '3', WORKER_SHARDS: '2, 0,2' }).workerShards, [2, 0])
  t.throws(() => loadWorkerConfig({ ...env, REDIS_SHARDS: '3', WORKER_SHARDS: '3' }), { name: 'ConfigError', variable: 'WORKER_SHARDS' })
  t.throws(
    () => loadWorkerConfig({ ...env, WORKER_SHARDS: '1' }),
    { name: 'ConfigError', variable: 'WORKER_SHARDS' },
    'one shard by default',
  )
})

t.test('WORKER_QUEUES: known queues only, each once, refused at start naming the variable', async (t) => {
  t.same(loadWorkerConfig(env).workerQueues, ['sessions', 'logs', 'media', 'deliveries', 'maintenance'], 'every queue by default')
  t.same(loadWorkerConfig({ ...env, WORKER_QUEUES: 'deliveries' }).workerQueues, ['deliveries'], 'outbound webhooks alone')
  t.same(loadWorkerConfig({ ...env, WORKER_QUEUES: 'sessions, media,sessions' }).workerQueues, ['sessions', 'media'])
  t.same(loadWorkerConfig({ ...env, WORKER_QUEUES: 'logs,maintenance' }).workerQueues, ['logs', 'maintenance'], 'the internal queue too')
  const err = t.throws(() => loadWorkerConfig({ ...env, WORKER_QUEUES: 'logs,bogus' })) as unknown
  t.ok(err instanceof ConfigError)
  t.equal((err as ConfigError).variable, 'WORKER_QUEUES')
  t.match((err as Error).message, /unknown queue "bogus" \(known: sessions, logs, media, deliveries, maintenance\)/)
  t.throws(() => loadWorkerConfig({ ...env, WORKER_QUEUES: ' , ' }), {
    name: 'ConfigError',
    variable: 'WORKER_QUEUES',
    message: /names no queue/,
  })
})

t.test('WORKER_CONCURRENCY: per-queue defaults, one value for all, a per-queue override wins', async (t) => {
  t.same(
    loadWorkerConfig(env).workerConcurrency,
    { sessions: 2048, logs: 64, media: 64, deliveries: 32 },
    'defaults: session jobs are small (2 batches of 1,000 in flight), logs and photos hold more memory',
  )
  t.same(
    loadWorkerConfig({ ...env, WORKER_CONCURRENCY: '16' }).workerConcurrency,
    { sessions: 16, logs: 16, media: 16, deliveries: 16 },
    'WORKER_CONCURRENCY sets every queue',
  )
  t.same(
    loadWorkerConfig({ ...env, WORKER_CONCURRENCY: '16', WORKER_CONCURRENCY_MEDIA: '4' }).workerConcurrency,
    { sessions: 16, logs: 16, media: 4, deliveries: 16 },
    'WORKER_CONCURRENCY_MEDIA overrides WORKER_CONCURRENCY for that queue only',
  )
  t.same(loadWorkerConfig({ ...env, WORKER_CONCURRENCY_SESSIONS: '512' }).workerConcurrency, {
    sessions: 512,
    logs: 64,
    media: 64,
    deliveries: 32,
  })
  t.throws(() => loadWorkerConfig({ ...env, WORKER_CONCURRENCY: 'lots' }), { message: /WORKER_CONCURRENCY/ })
  t.throws(() => loadWorkerConfig({ ...env, WORKER_CONCURRENCY_LOGS: '0' }), { message: /WORKER_CONCURRENCY_LOGS/ })
})

t.test('WORKER_BATCH_WAIT_MS: 5 ms by default, 0 to 1000 accepted, anything else named', async (t) => {
  t.equal(loadWorkerConfig(env).workerBatchWaitMs, 5)
  t.equal(loadWorkerConfig({ ...env, WORKER_BATCH_WAIT_MS: '0' }).workerBatchWaitMs, 0, '0: a batch leaves as soon as a slot is free')
  t.equal(loadWorkerConfig({ ...env, WORKER_BATCH_WAIT_MS: '1000' }).workerBatchWaitMs, 1000)
  for (const bad of ['1001', '-1', 'soon'])
    t.throws(() => loadWorkerConfig({ ...env, WORKER_BATCH_WAIT_MS: bad }), { name: 'ConfigError', variable: 'WORKER_BATCH_WAIT_MS' }, bad)
})

t.test('WORKER_BATCH_MAX_DOCUMENTS: 1000 by default, 1 to 10,000 accepted, anything else named', async (t) => {
  t.equal(loadWorkerConfig(env).workerBatchMaxDocuments, 1000)
  t.equal(loadWorkerConfig({ ...env, WORKER_BATCH_MAX_DOCUMENTS: '1' }).workerBatchMaxDocuments, 1)
  t.equal(loadWorkerConfig({ ...env, WORKER_BATCH_MAX_DOCUMENTS: '10000' }).workerBatchMaxDocuments, 10_000)
  for (const bad of ['0', '10001', 'many'])
    t.throws(
      () => loadWorkerConfig({ ...env, WORKER_BATCH_MAX_DOCUMENTS: bad }),
      { name: 'ConfigError', variable: 'WORKER_BATCH_MAX_DOCUMENTS' },
      bad,
    )
})

t.test('webhook settings: private addresses refused by default, a 3-day schedule, every invalid value named', async (t) => {
  t.same(loadWorkerConfig(env).webhooks, {
    allowPrivate: false,
    timeoutMs: 10_000,
    backoffMs: 10_000,
    backoffCapMs: 3_600_000,
    retryForMs: 3 * 86_400_000,
  })
  t.equal(loadWorkerConfig({ ...env, WEBHOOK_ALLOW_PRIVATE: '1' }).webhooks.allowPrivate, true)
  t.equal(loadWorkerConfig({ ...env, WEBHOOK_ALLOW_PRIVATE: '0' }).webhooks.allowPrivate, false)
  for (const [name, value] of [
    ['WEBHOOK_ALLOW_PRIVATE', 'yes'],
    ['WEBHOOK_TIMEOUT_MS', '10'],
    ['WEBHOOK_BACKOFF_MS', 'soon'],
    ['WEBHOOK_RETRY_FOR_MS', String(31 * 86_400_000)],
  ] as const)
    t.throws(() => loadWorkerConfig({ ...env, [name]: value }), { name: 'ConfigError', variable: name }, `${name}=${value}`)
  t.throws(
    () => loadWorkerConfig({ ...env, WEBHOOK_BACKOFF_MS: '5000', WEBHOOK_BACKOFF_CAP_MS: '1000' }),
    { name: 'ConfigError', variable: 'WEBHOOK_BACKOFF_CAP_MS' },
    'a cap below the first delay',
  )
})

t.test('hostile-client limits: defaults, and every invalid value named', async (t) => {
  const c = loadGatewayConfig(env)
  t.match(c, {
    drainMaxBytes: 64 * 1024 * 1024,
    drainTimeoutMs: 30_000,
    requestTimeoutMs: 600_000,
    headersTimeoutMs: 30_000,
    keepAliveTimeoutMs: 72_000,
    maxInFlightPerToken: 32,
    workspaceBytesPerMinute: 256 * 1024 * 1024,
  })
  t.equal(loadWorkerConfig(env).logsMaxEntries, 10_000)
  t.equal(
    loadGatewayConfig({ ...env, DRAIN_MAX_BYTES: '0', MAX_IN_FLIGHT_PER_TOKEN: '0', WORKSPACE_BYTES_PER_MINUTE: '0' })
      .workspaceBytesPerMinute,
    0,
    '0 turns the drain, the cap and the budget off',
  )
  // A budget below the largest body would refuse that body for ever (429 is retried).
  t.throws(() => loadGatewayConfig({ ...env, WORKSPACE_BYTES_PER_MINUTE: String(10 * 1024 * 1024) }), {
    message: /WORKSPACE_BYTES_PER_MINUTE must be 0 \(off\) or at least the largest body allowed \(52428800 bytes/,
  })
  t.equal(
    loadGatewayConfig({ ...env, WORKSPACE_BYTES_PER_MINUTE: String(10 * 1024 * 1024), MAX_MEDIA_BYTES: String(8 * 1024 * 1024) })
      .workspaceBytesPerMinute,
    10 * 1024 * 1024,
    'fine once the photo limit is below it',
  )
  t.throws(() => loadGatewayConfig({ ...env, HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '30000' }), {
    message: /HEADERS_TIMEOUT_MS must not be more than REQUEST_TIMEOUT_MS/,
  })
  t.throws(() => loadGatewayConfig({ ...env, REQUEST_TIMEOUT_MS: '500' }), { message: /REQUEST_TIMEOUT_MS must be between 1000/ })
  t.throws(() => loadGatewayConfig({ ...env, REQUEST_TIMEOUT_MS: '10m' }), { message: /REQUEST_TIMEOUT_MS must be a whole number/ })
  t.throws(() => loadGatewayConfig({ ...env, KEEP_ALIVE_TIMEOUT_MS: '0' }), { message: /KEEP_ALIVE_TIMEOUT_MS/ })
  t.throws(() => loadGatewayConfig({ ...env, DRAIN_TIMEOUT_MS: '-1' }), { message: /DRAIN_TIMEOUT_MS/ })
  t.throws(() => loadGatewayConfig({ ...env, DRAIN_MAX_BYTES: '64MiB' }), { message: /DRAIN_MAX_BYTES/ })
  t.throws(() => loadGatewayConfig({ ...env, MAX_IN_FLIGHT_PER_TOKEN: 'many' }), { message: /MAX_IN_FLIGHT_PER_TOKEN/ })
  t.throws(() => loadWorkerConfig({ ...env, LOGS_MAX_ENTRIES: '0' }), { message: /LOGS_MAX_ENTRIES must be between 1/ })
})
