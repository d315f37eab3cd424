// The Redis token mirror never goes back in time: a full sync that read MongoDB just before a
// revocation must not write the old "active" entry over the revoked one.
import t from 'tap'
import { Redis } from 'ioredis'
import { keys } from '../shared/keys.ts'
import { hashToken, publishEntries, type TokenEntry } from '../shared/token-registry.ts'
import { testConfig } from './helpers/env.ts'

const config = testConfig()
const redis = new Redis(config.redisUrl)
t.teardown(() => redis.disconnect())
const k = keys(config.redisPrefix)
const hash = hashToken('rdt_example')
const entry = (revoked: boolean, v: number): TokenEntry => ({
  id: 't0123456789abcdef',
  workspace_id: 'w0123456789abcdef',
  permissions: ['test_session'],
  expires_at: null,
  revoked,
  workspace_active: true,
  v,
})
const stored = async () => JSON.parse((await redis.hget(k.tokens, hash)) ?? 'null') as TokenEntry | null

t.test('an older entry never overwrites a newer one', async (t) => {
  await publishEntries(redis, config.redisPrefix, new Map([[hash, entry(false, 1000)]]))
  t.equal((await stored())?.revoked, false)
  await publishEntries(redis, config.redisPrefix, new Map([[hash, entry(true, 2000)]]))
  t.equal((await stored())?.revoked, true, 'the revocation lands')
  await publishEntries(redis, config.redisPrefix, new Map([[hash, entry(false, 1500)]]))
  t.equal((await stored())?.revoked, true, 'a stale write is ignored')
  await publishEntries(redis, config.redisPrefix, new Map([[hash, entry(false, 3000)]]))
  t.equal((await stored())?.revoked, false, 'a newer change (e.g. a fix made by hand) lands')
})

t.test('every admin write is announced, even when nothing changed', async (t) => {
  const sub = new Redis(config.redisUrl)
  t.teardown(() => sub.disconnect())
  const seen: string[] = []
  sub.on('message', (_c: string, m: string) => seen.push(m))
  await sub.subscribe(k.tokensChannel)
  await publishEntries(redis, config.redisPrefix, new Map([[hash, entry(false, 3000)]]))
  const deadline = Date.now() + 2000
  while (!seen.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.same(seen, [hash])
})
