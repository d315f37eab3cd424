// The token cache's reads of the Redis mirror (gateway/token-cache.ts): concurrent misses for one
// token share one read, a change announced while a read is on its way is not served from that
// read, and a lookup still answers when Redis is at its memory limit. Each test has a Redis of
// its own, so that its command counts are its own and filling it disturbs no one.
import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { createTokenCache, LOOKUP_SHA } from '../gateway/token-cache.ts'
import { keys } from '../shared/keys.ts'
import { createSubscriberRedis } from '../shared/redis.ts'
import { hashToken, type TokenEntry } from '../shared/token-registry.ts'
import { waitFor } from '../testing/wait.ts'
import { privateRedis } from './helpers/private-redis.ts'

const entry = (v: number, revoked = false): TokenEntry => ({
  id: 't0000000000000001',
  workspace_id: 'w0000000000000001',
  permissions: ['test_session'],
  expires_at: null,
  revoked,
  workspace_active: true,
  v,
})

/** Calls of these commands so far, from Redis's INFO commandstats. */
async function calls(redis: Redis, ...commands: string[]): Promise<number> {
  const stats = await redis.info('commandstats')
  return commands.reduce((n, c) => n + Number(new RegExp(`^cmdstat_${c}:calls=(\\d+)`, 'm').exec(stats)?.[1] ?? 0), 0)
}

async function setup(t: Test) {
  const server = await privateRedis(t)
  const prefix = `{t${randomBytes(4).toString('hex')}}`
  const main = new Redis(server.url)
  const sub = createSubscriberRedis(server.url)
  const direct = new Redis(server.url)
  t.teardown(() => {
    main.disconnect()
    sub.disconnect()
    direct.disconnect()
  })
  const cache = createTokenCache(main, sub, { prefix, ttlMs: 60_000 })
  // A poll: the token cache announces nothing when its subscription is confirmed.
  await waitFor(() => cache.subscribed(), { what: 'the subscription' })
  const k = keys(prefix)
  await direct.set(k.tokensSynced, '1')
  const token = 'rdt_' + randomBytes(16).toString('base64url')
  await direct.hset(k.tokens, hashToken(token), JSON.stringify(entry(1)))
  // One lookup first, so that the script is in Redis's cache: the first lookup on a fresh Redis is
  // an EVALSHA_RO refused with NOSCRIPT, then an EVAL_RO, and that would count twice below.
  t.equal(await cache.lookup('rdt_' + randomBytes(16).toString('base64url')), null, 'an unknown token')
  /** How many lookup scripts this Redis has run (EVAL_RO the first time, EVALSHA_RO after). */
  const scriptCalls = () => calls(direct, 'eval_ro', 'evalsha_ro')
  return { cache, sub, direct, k, token, scriptCalls }
}

t.test('concurrent lookups of an uncached token share one read of the mirror', async (t) => {
  const { cache, token, scriptCalls } = await setup(t)
  const before = await scriptCalls()
  const results = await Promise.all(Array.from({ length: 20 }, () => cache.lookup(token)))
  t.equal((await scriptCalls()) - before, 1, 'one script call for 20 lookups')
  for (const r of results) t.match(r, { v: 1, revoked: false })
  t.equal(cache.size(), 2, 'and the entry is cached (beside the unknown token of the set-up)')
  await cache.lookup(token)
  t.equal((await scriptCalls()) - before, 1, 'a later lookup is served from the cache')
})

t.test('a change announced while a read is on its way: later lookups read again, and the old read is not cached', async (t) => {
  const { cache, sub, direct, k, token, scriptCalls } = await setup(t)
  const before = await scriptCalls()
  const first = cache.lookup(token)
  await direct.hset(k.tokens, hashToken(token), JSON.stringify(entry(2, true)))
  // The announcement is delivered by hand, between the read's send and its answer. Why a fake
  // event: on real connections the order of a reply and a pub/sub message cannot be arranged,
  // and this order is the one that matters (the publish of shared/token-registry.ts).
  sub.emit('message', k.tokensChannel, hashToken(token))
  const second = cache.lookup(token)
  t.not(second, first, 'the lookup after the announcement does not join the earlier read')
  t.match(await second, { v: 2, revoked: true }, 'and sees the change')
  await first
  t.equal((await scriptCalls()) - before, 2, 'two reads')
  t.match(await cache.lookup(token), { v: 2, revoked: true }, 'what is cached is the read after the change')
})

t.test('at the memory limit an uncached token is still looked up (the script writes nothing)', async (t) => {
  const { cache, direct, token } = await setup(t)
  const chunk = 'x'.repeat(64 * 1024)
  for (let i = 0; i < 32; i++) await direct.set(`filler:${i}`, chunk)
  const used = Number(/^used_memory:(\d+)/m.exec(await direct.info('memory'))?.[1])
  await direct.config('SET', 'maxmemory', String(used - 1024 * 1024))
  await t.rejects(direct.set('probe', 'x'), /OOM/, 'Redis refuses writes')
  t.match(await cache.lookup(token), { v: 1 }, 'the lookup answers')
  const unknown = await cache.lookup('rdt_' + randomBytes(16).toString('base64url'))
  t.equal(unknown, null, 'and an unknown token is unknown, not "not synced"')
})

t.test('a Redis that lost its script cache (restart, failover, SCRIPT FLUSH): the lookup loads the script again', async (t) => {
  const { cache, direct, token } = await setup(t)
  const evalRo = () => calls(direct, 'eval_ro')
  const before = await evalRo()
  await direct.script('FLUSH')
  t.match(await cache.lookup(token), { v: 1 }, 'the lookup answers')
  t.equal((await evalRo()) - before, 1, 'through one EVAL_RO, after EVALSHA_RO met NOSCRIPT')
  t.same(await direct.script('EXISTS', LOOKUP_SHA), [1], 'which cached it again')
})
