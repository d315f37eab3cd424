// DSN -> token entry, without MongoDB on the request path: an in-process cache in front of the
// Redis mirror (shared/token-registry.ts). Changes are pushed on a pub/sub channel and evict the
// cached entry at once, so a revocation reaches every gateway well within a second. While the
// subscription is down nothing is cached, because a missed message could keep a revoked token alive.
import { createHash } from 'node:crypto'
import type { RedisClient } from '../shared/redis.ts'
import { keys } from '../shared/keys.ts'
// token-hash.ts, not token-registry.ts: the latter loads the MongoDB driver, which the gateway never uses.
import { hashToken } from '../shared/token-hash.ts'
import type { TokenEntry } from '../shared/token-registry.ts'

export type Lookup = TokenEntry | null | 'not-synced'

export interface TokenCacheOptions {
  prefix: string
  ttlMs: number
  /** Bounds memory when someone guesses DSNs: unknown tokens are cached briefly, and only so many. */
  maxEntries?: number
  negativeTtlMs?: number
  /** Called for each read sent to Redis (the gateway counts them: rdt_gateway_token_reads_total). */
  onRead?: () => void
}

// The entry, and whether the mirror is loaded at all (a wiped Redis must not turn every device
// away with 403), read together in one command. Why a script and not MULTI: a MULTI costs the
// gateway an ioredis Pipeline per lookup (the bench profile: 4.4% of the gateway's time at 0.15
// lookups per accept), and at maxmemory Redis refuses a whole MULTI, reads included. Why
// EVALSHA_RO, not a script defined on the client (EVALSHA): the gateway may only read the token
// keys (deploy/redis/users.acl.in), and Redis's ACL takes any EVAL's keys as written to; the
// read-only forms, with the no-writes flag, also run at maxmemory.
// KEYS: the tokens hash, the synced flag. ARGV: the token's hash.
// Returns {entry} for a known token, {false, synced (0/1)} for an unknown one.
const LOOKUP_SCRIPT = `#!lua flags=no-writes
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then return {v} end
return {false, redis.call('EXISTS', KEYS[2])}
`
export const LOOKUP_SHA = createHash('sha1').update(LOOKUP_SCRIPT).digest('hex')

type LookupReply = [string | null, number?]

/** EVALSHA_RO, and EVAL_RO (which also caches the script) when Redis does not have it: after a restart or SCRIPT FLUSH. */
async function readEntry(redis: RedisClient, tokens: string, synced: string, hash: string): Promise<LookupReply> {
  try {
    return (await redis.evalsha_ro(LOOKUP_SHA, 2, tokens, synced, hash)) as LookupReply
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
    return (await redis.eval_ro(LOOKUP_SCRIPT, 2, tokens, synced, hash)) as LookupReply
  }
}

export function createTokenCache(redis: RedisClient, subscriber: RedisClient, opts: TokenCacheOptions) {
  const k = keys(opts.prefix)
  // Lookups on their way to Redis, by token hash: the requests of one phone (or of a burst
  // after a restart) that arrive together share one read instead of one each.
  const reading = new Map<string, Promise<Lookup>>()
  const maxEntries = opts.maxEntries ?? 50_000
  const negativeTtlMs = opts.negativeTtlMs ?? Math.min(opts.ttlMs, 5000)
  const cache = new Map<string, { value: TokenEntry | null; until: number }>()
  // True only while this connection's SUBSCRIBE is confirmed: a change published before that
  // could be missed, so until then nothing is cached and every lookup reads the mirror.
  let live = false
  // Bumped on every invalidation: a lookup that was already reading Redis when a change was
  // announced may have read the old entry, so its result is not cached.
  let generation = 0
  // Bumped on every close: a SUBSCRIBE confirmed on an earlier connection says nothing about this one.
  let connection = 0

  // A read already on its way when a change is announced may return the old entry: requests
  // after the announcement must not share it, so it is dropped from `reading` too.
  const forgetAll = () => {
    generation++
    cache.clear()
    reading.clear()
  }

  subscriber.on('message', (channel: string, hash: string) => {
    if (channel !== k.tokensChannel) return
    if (hash === '*') return forgetAll()
    generation++
    cache.delete(hash)
    reading.delete(hash)
  })
  // Anything may have changed while we were not listening.
  subscriber.on('close', () => {
    live = false
    connection++
    forgetAll()
  })
  // The subscriber connection never resubscribes by itself (shared/redis.ts createSubscriberRedis
  // says why): subscribe on every (re)connect, and go live once Redis has confirmed it.
  const subscribe = () => {
    const mine = connection
    subscriber.subscribe(k.tokensChannel).then(
      () => {
        if (mine !== connection) return
        // Lookups that started before the subscription was confirmed may hold a stale entry.
        forgetAll()
        live = true
      },
      // The connection dropped before the answer: 'close', then 'ready' again, will retry.
      () => {},
    )
  }
  subscriber.on('ready', subscribe)
  // Not awaited: a gateway started while Redis is down must still come up and answer 503.
  if (subscriber.status === 'ready') subscribe()

  async function read(hash: string): Promise<Lookup> {
    const gen = generation
    opts.onRead?.()
    const [raw, synced] = await readEntry(redis, k.tokens, k.tokensSynced, hash)
    const value: TokenEntry | null = raw ? (JSON.parse(raw) as TokenEntry) : null
    if (!value && !synced) return 'not-synced'
    if (live && gen === generation) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string)
      cache.set(hash, { value, until: Date.now() + (value ? opts.ttlMs : negativeTtlMs) })
    }
    return value
  }

  return {
    lookup(token: string): Promise<Lookup> | Lookup {
      const hash = hashToken(token)
      const hit = cache.get(hash)
      if (hit && hit.until > Date.now()) return hit.value
      let pending = reading.get(hash)
      if (!pending) {
        const mine = read(hash).finally(() => reading.get(hash) === mine && reading.delete(hash))
        reading.set(hash, mine)
        pending = mine
      }
      return pending
    },
    size: () => cache.size,
    /** Whether changes are being heard (and so lookups cached); false between a reconnect and its confirmed SUBSCRIBE. */
    subscribed: () => live,
  }
}

export type TokenCache = ReturnType<typeof createTokenCache>
