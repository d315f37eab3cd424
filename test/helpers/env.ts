// Test isolation: every test file gets its own Redis key prefix (so its own queues and
// idempotency keys) and its own MongoDB database, on the one real local stack.
//
// Credentials: testConfig() holds the stack's TEST-ONLY root credentials (the Redis user
// `inspector`, the S3 root key), for seeding and checking state. The gateway, workers, admin
// panel and CLI under test get their own role's credentials instead, through asRole() and
// roleProcessEnv() (stack/roles.ts), exactly as `npm start` and compose.yaml give them, so the
// whole suite proves that those rights are enough.
import { randomBytes } from 'node:crypto'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { loadTestConfig, type TestConfig } from '../../testing/config.ts'
import { inspectorEnv, roleEnv, type Role } from '../../stack/roles.ts'
import { QUEUE_NAMES, type QueueName } from '../../shared/queue-settings.ts'

export function testConfig(overrides: Record<string, string> = {}): TestConfig {
  const id = randomBytes(5).toString('hex')
  const mongo = new URL(process.env.MONGODB_URL ?? 'mongodb://127.0.0.1:27017/rdt')
  mongo.pathname = `/t_${id}`
  return loadTestConfig({
    ...inspectorEnv(process.env),
    REDIS_PREFIX: `{t${id}}`,
    MONGODB_URL: mongo.toString(),
    LOG_LEVEL: 'warn',
    ...overrides,
  })
}

/** The same config with `role`'s Redis user and S3 key instead of the inspector's. */
export function asRole(config: TestConfig, role: Exclude<Role, 'cli'>): TestConfig {
  const env = roleEnv(process.env, role)
  // A Redis the test started itself (a private redis-server, no ACL) is kept as it is.
  const stackRedis = new URL(env.REDIS_URL!).host === new URL(config.redisUrl).host
  return {
    ...config,
    redisUrl: stackRedis ? env.REDIS_URL! : config.redisUrl,
    s3: { ...config.s3, accessKey: env.S3_ACCESS_KEY!, secretKey: env.S3_SECRET_KEY! },
  }
}

/**
 * The test's own view of the queues, on the inspector's connection. The gateway's Redis user may
 * add jobs and count them but never read one back (no HGETALL), so a test checks what the
 * gateway queued through these, not through the gateway's own Queue objects.
 */
export function inspectorQueues(t: { teardown(fn: () => unknown): void }, config: TestConfig): Record<QueueName, Queue> {
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null })
  const queues = Object.fromEntries(QUEUE_NAMES.map((q) => [q, new Queue(q, { connection, prefix: config.redisPrefix })])) as Record<
    QueueName,
    Queue
  >
  t.teardown(async () => {
    await Promise.all(Object.values(queues).map((q) => q.close()))
    connection.disconnect()
  })
  return queues
}

/**
 * The environment for a child process of `role` (gateway/server.ts, cli/main.ts, …): that role's
 * credentials only, plus `extra` (a test's prefix, database, ports).
 */
export function roleProcessEnv(role: Role, extra: Record<string, string | undefined> = {}): Record<string, string> {
  const env = roleEnv({ ...process.env, ...extra }, role)
  // A Redis the test started itself (no ACL), or a closed port, is kept as the test gave it.
  if (extra.REDIS_URL && process.env.REDIS_URL && new URL(extra.REDIS_URL).host !== new URL(process.env.REDIS_URL).host)
    env.REDIS_URL = extra.REDIS_URL
  return env
}
