// Revocation holds: a revoked token is refused by a gateway within a second of `token revoke`
// returning success, also when the gateway's subscription had to reconnect (Redis restarted) and
// when Redis was down as the revocation started. Each case runs against a Redis of its own, so
// it can be stopped and restarted without disturbing the rest of the suite (which, running in
// parallel, is the load). The 1 s bound is the contract operators rely on for a stolen phone.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildGateway } from '../gateway/app.ts'
import { createTokenCache, type TokenCache } from '../gateway/token-cache.ts'
import type { TestConfig } from '../testing/config.ts'
import { keys } from '../shared/keys.ts'
import { collections, connectMongo } from '../shared/mongo.ts'
import { createSubscriberRedis } from '../shared/redis.ts'
import { hashToken, publishEntries, type TokenEntry } from '../shared/token-registry.ts'
import type { ServiceHandle } from '../stack/services.ts'
import { asRole, roleProcessEnv, testConfig } from './helpers/env.ts'
import { seedToken, type SeededToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { privateRedis } from './helpers/private-redis.ts'

const run = promisify(execFile)

const put = (app: FastifyInstance, token: string, session: string) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${session}/`,
    payload: '{"state":"QUEUED"}',
    headers: { 'content-type': 'application/json' },
  })

/** `npm run cli -- token revoke <id>` as the real child process, against this test's services. */
async function cliRevoke(config: TestConfig, id: string): Promise<{ code: number; stderr: string }> {
  const env = roleProcessEnv('cli', {
    MONGODB_URL: config.mongodbUrl,
    REDIS_URL: config.redisUrl,
    REDIS_PREFIX: config.redisPrefix,
    PUBLIC_URL: config.publicUrl,
  })
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'token', 'revoke', id], { env })
    return { code: 0, stderr: r.stderr }
  } catch (err) {
    const e = err as { code?: number; stderr?: string }
    return { code: e.code ?? -1, stderr: e.stderr ?? '' }
  }
}

/**
 * From the moment the CLI returned success: polls the gateway until the token is refused with 403.
 * No answer after that moment may be a 201. Returns how long the 403 took, counted from `from()`
 * (read when the 403 comes), which a caller can move later than the CLI's return.
 */
async function refusedAfter(t: Test, app: FastifyInstance, token: string, from?: () => number): Promise<number> {
  const cliDone = Date.now()
  for (let i = 0; ; i++) {
    const res = await put(app, token, `after-${i}`)
    if (res.statusCode === 403) return Date.now() - (from?.() ?? cliDone)
    t.not(res.statusCode, 201, 'a revoked token is never accepted once the CLI has returned')
    if (Date.now() - cliDone > 10_000) return Infinity
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function gatewayWithCachedToken(
  t: Test,
  redis: ServiceHandle,
): Promise<{ app: FastifyInstance; config: TestConfig; seeded: SeededToken }> {
  const config = testConfig({ REDIS_URL: redis.url })
  const seeded = await seedToken(config)
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  t.teardown(() => app.close())
  // A poll: the token cache announces nothing when its subscription is confirmed.
  await waitFor(() => app.tokenCache.subscribed(), { what: 'the token-change subscription' })
  t.equal((await put(app, seeded.token, 'before')).statusCode, 201, 'the token works')
  t.equal(app.tokenCache.size(), 1, 'and is cached, so only a pushed change can refuse it')
  return { app, config, seeded }
}

t.test('a subscription made during the connection handshake still hears every change', async (t) => {
  // The window that broke it: ioredis wrote a SUBSCRIBE sent while connecting ahead of its own
  // INFO ready check; Redis refused the INFO, and the connection came up unsubscribed for good.
  const redis = await privateRedis(t)
  const prefix = `{t${randomBytes(4).toString('hex')}}`
  const main = new Redis(redis.url)
  const sub = createSubscriberRedis(redis.url)
  const errors: string[] = []
  sub.on('error', (err: Error) => errors.push(err.message))
  t.teardown(() => {
    main.disconnect()
    sub.disconnect()
  })
  const cache = await new Promise<TokenCache>((resolve) =>
    sub.once('connect', () => resolve(createTokenCache(main, sub, { prefix, ttlMs: 60_000 }))),
  )
  // A poll: the token cache announces nothing when its subscription is confirmed.
  await waitFor(() => cache.subscribed(), { what: 'the subscription' })

  const token = 'rdt_' + randomBytes(16).toString('base64url')
  const entry: TokenEntry = {
    id: 't0000000000000001',
    workspace_id: 'w0000000000000001',
    permissions: ['test_session'],
    expires_at: null,
    revoked: false,
    workspace_active: true,
    v: 1,
  }
  // Written without an announcement: the announcement of a first write could evict the entry
  // that the lookup below caches, and this test is about the announcement of the second one.
  await main.hset(keys(prefix).tokens, hashToken(token), JSON.stringify(entry))
  t.match(await cache.lookup(token), { revoked: false })
  t.equal(cache.size(), 1, 'cached')
  await publishEntries(main, prefix, new Map([[hashToken(token), { ...entry, revoked: true, v: 2 }]]))
  // A poll: applying a pushed entry emits nothing a test can hear.
  await waitFor(async () => (await cache.lookup(token)) !== null && ((await cache.lookup(token)) as TokenEntry).revoked, {
    what: 'the pushed revocation',
  })
  t.pass('the cached entry was replaced by the pushed one')
  t.same(errors, [], 'the subscriber connection never sent a command Redis refused')
})

t.test('Redis restarted between caching and revoking: refused within 1 s of the CLI', async (t) => {
  const redis = await privateRedis(t)
  const { app, config, seeded } = await gatewayWithCachedToken(t, redis)
  await redis.stop()
  await redis.start()
  // The subscription must come back by itself, and the token be cached again through it.
  // Polls: the reconnection, and the gateway serving again, are seen only by asking.
  await waitFor(() => app.tokenCache.subscribed(), { what: 'the subscription after the restart' })
  await waitFor(async () => (await put(app, seeded.token, 'between')).statusCode === 201, { what: 'the gateway to serve again' })
  t.equal(app.tokenCache.size(), 1, 'the token is cached again')

  const r = await cliRevoke(config, seeded.tokenId)
  t.equal(r.code, 0, r.stderr)
  const ms = await refusedAfter(t, app, seeded.token)
  t.ok(ms <= 1000, `refused ${ms} ms after the CLI returned`)
})

t.test('Redis down when the revocation starts: the CLI waits for it, then refused within 1 s', async (t) => {
  const redis = await privateRedis(t)
  const { app, config, seeded } = await gatewayWithCachedToken(t, redis)
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  await redis.stop()
  const cli = cliRevoke(config, seeded.tokenId)
  // Redis comes back only after the revocation is in MongoDB, so the CLI's push must be retried.
  // A poll: the CLI's write to MongoDB is seen only by reading it.
  await waitFor(async () => (await collections(db).tokens.findOne({ _id: seeded.tokenId }))?.revoked_at, {
    timeoutMs: 30_000,
    what: 'the revocation in MongoDB',
  })
  // Until the gateway's own connection is back it cannot read the mirror, so it answers 503
  // (never 201: its cache was dropped when the subscription closed). The second counts from
  // whichever comes later, the CLI's success or the gateway reaching Redis again.
  let gatewayBack = Infinity
  app.redis.once('ready', () => (gatewayBack = Date.now()))
  await redis.start()
  const r = await cli
  const cliDone = Date.now()
  t.equal(r.code, 0, r.stderr)
  const ms = await refusedAfter(t, app, seeded.token, () => Math.max(cliDone, gatewayBack))
  t.ok(ms <= 1000, `refused ${ms} ms after the CLI returned and the gateway reached Redis`)
})

t.test('a revocation that cannot be pushed is an error, not a silent success', async (t) => {
  const redis = await privateRedis(t)
  const config = testConfig({ REDIS_URL: redis.url })
  const seeded = await seedToken(config)
  await redis.stop()
  const started = Date.now()
  const r = await cliRevoke(config, seeded.tokenId)
  t.equal(r.code, 1, 'exit 1')
  t.match(r.stderr, /saved in MongoDB, but the gateways could not be told/)
  t.match(r.stderr, new RegExp(`token revoke ${seeded.tokenId}`), 'says how to push it again')
  t.ok(Date.now() - started < 30_000, 'within a bounded time')
  const { client, db } = await connectMongo(config.mongodbUrl, 1)
  t.teardown(() => client.close())
  t.ok((await collections(db).tokens.findOne({ _id: seeded.tokenId }))?.revoked_at, 'the revocation itself stands')
})
