// Whatever Redis answers at its memory limit, or after it lost its script cache, the gateway
// answers 503 (never 500), and it accepts again once Redis can take work. Against a Redis of
// this test's own, which it fills to its limit and flushes scripts from.
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { buildGateway } from '../gateway/app.ts'
import { keys } from '../shared/keys.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { seedToken, type SeededToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { fakeJpeg } from '../testing/media.ts'
import { privateRedis } from './helpers/private-redis.ts'

async function setup(t: Test) {
  // The gateway's own high-water mark off: Redis itself must refuse, as when the mark is set too high.
  const redis = await privateRedis(t, ['--maxmemory', String(64 * 1024 * 1024)])
  const config = testConfig({ REDIS_URL: redis.url, REDIS_MEMORY_HIGH_WATER: '0' })
  const seeded = await seedToken(config)
  const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
  t.teardown(() => app.close())
  const direct = new Redis(redis.url)
  t.teardown(() => direct.disconnect())
  // A poll: readiness (Redis reachable, scripts loaded) is seen only by asking /readyz.
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, { what: 'the gateway to be ready' })
  return { app, direct, seeded, config }
}

const session = (app: FastifyInstance, token: string, id: string) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${id}/`,
    payload: JSON.stringify({ id, state: 'QUEUED' }),
    headers: { 'content-type': 'application/json' },
  })
const photo = (app: FastifyInstance, token: string, id: string) =>
  app.inject({
    method: 'PUT',
    url: `/ingest/${token}/test_session/${id}/media/cropped/`,
    payload: fakeJpeg(20_000),
    headers: { 'content-type': 'image/jpeg', 'content-disposition': 'attachment; filename=a.jpg' },
  })

/**
 * Puts Redis over its memory limit by a wide margin: 2 MB of keys, then maxmemory 1 MB below what
 * it uses. Filling up to the limit instead leaves it hovering at the edge, where freeing one
 * refused command's buffer can let the next small write through. Returns the undo.
 */
async function overLimit(direct: Redis): Promise<() => Promise<void>> {
  const chunk = 'x'.repeat(64 * 1024)
  for (let i = 0; i < 32; i++) await direct.set(`filler:${i}`, chunk)
  const used = Number(/^used_memory:(\d+)/m.exec(await direct.info('memory'))?.[1])
  await direct.config('SET', 'maxmemory', String(used - 1024 * 1024))
  return async () => {
    await direct.config('SET', 'maxmemory', String(64 * 1024 * 1024))
  }
}

/**
 * A photo whose claim passes before Redis reaches its limit and whose enqueue comes after: over
 * real HTTP, the body held back until the claim is in Redis, then `between()`, then the rest.
 */
async function photoAcrossTheLimit(
  app: FastifyInstance,
  direct: Redis,
  prefix: string,
  seeded: SeededToken,
  session: string,
  between: () => Promise<unknown>,
) {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const body = fakeJpeg(200_000)
  const claim = keys(prefix).idempotency('m', seeded.workspaceId, session, 'cropped')
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: `/ingest/${seeded.token}/test_session/${session}/media/cropped/`,
        headers: { 'content-type': 'image/jpeg', 'content-length': body.length },
      },
      (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', reject)
    req.write(body.subarray(0, 1000))
    // A poll: the claim is a key the gateway writes; Redis tells no one (no keyspace events here).
    waitFor(() => direct.exists(claim), { intervalMs: 5, what: 'the claim' })
      .then(between)
      .then(() => req.end(body.subarray(1000)), reject)
  })
}

t.test('at the memory limit every upload is 503 with Retry-After; afterwards they are accepted', async (t) => {
  const { app, direct, seeded, config } = await setup(t)
  // The token is looked up (and cached) first: at the limit its lookup would be refused too.
  // A poll: the token cache announces nothing when its subscription is confirmed.
  await waitFor(() => app.tokenCache.subscribed(), { what: 'the token-change subscription' })
  t.equal((await session(app, seeded.token, 'before-limit')).statusCode, 201)
  let undo: () => Promise<void> = async () => {}
  // The first photo transaction of this gateway's connection comes at the limit: Redis refuses it
  // before any of its scripts run. That once left ioredis believing them loaded, and every later
  // photo failed with NOSCRIPT, as a 500, until the gateway reconnected.
  const first = await photoAcrossTheLimit(app, direct, config.redisPrefix, seeded, 'across', async () => (undo = await overLimit(direct)))
  t.equal(first.status, 503, `a photo claimed before the limit and enqueued at it: 503 (${first.body})`)
  for (const [what, res] of [
    ['photo', await photo(app, seeded.token, 'at-limit-1')],
    ['session', await session(app, seeded.token, 'at-limit-2')],
  ] as const) {
    t.equal(res.statusCode, 503, `${what}: 503 at the limit (${res.body})`)
    t.ok(Number(res.headers['retry-after']) > 0, `${what}: with Retry-After`)
  }
  await undo()
  t.equal((await photo(app, seeded.token, 'after-1')).statusCode, 201, 'a photo is accepted once memory is freed')
  t.equal((await session(app, seeded.token, 'after-2')).statusCode, 201, 'and a session')
})

t.test('a Redis that lost its script cache under a live connection: 201, never 500', async (t) => {
  const { app, direct, seeded } = await setup(t)
  t.equal(
    (await photo(app, seeded.token, `warm-${randomBytes(3).toString('hex')}`)).statusCode,
    201,
    'warm: the scripts are in use on this connection',
  )
  t.equal((await session(app, seeded.token, 'warm-session')).statusCode, 201)
  // As after an operator's SCRIPT FLUSH: the gateway's connection still takes the scripts as loaded.
  await direct.script('FLUSH')
  t.equal((await photo(app, seeded.token, 'flushed-1')).statusCode, 201, 'a photo (a transaction) loads them again and is accepted')
  t.equal((await session(app, seeded.token, 'flushed-2')).statusCode, 201, 'a session too')
})
