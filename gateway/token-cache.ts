// DSN -> token entry, without MongoDB on the request path: an in-process cache in front of the
// Redis mirror (shared/token-registry.ts). Changes are pushed on a pub/sub channel and evict the
// cached entry at once, so a revocation reaches every gateway well within a second. While the
// subscription is down nothing is cached, because a missed message could keep a revoked token alive.
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
}

export function createTokenCache(redis: RedisClient, subscriber: RedisClient, opts: TokenCacheOptions) {
  const k = keys(opts.prefix)
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

  const forgetAll = () => {
    generation++
    cache.clear()
  }

  subscriber.on('message', (channel: string, hash: string) => {
    if (channel !== k.tokensChannel) return
    generation++
    if (hash === '*') cache.clear()
    else cache.delete(hash)
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

  return {
    async lookup(token: string): Promise<Lookup> {
      const hash = hashToken(token)
      const hit = cache.get(hash)
      if (hit && hit.until > Date.now()) return hit.value
      const gen = generation
      // One round trip: the entry, and whether the mirror is loaded at all (a wiped Redis must not turn every device away with 403).
      const res = await redis.multi().hget(k.tokens, hash).exists(k.tokensSynced).exec()
      if (!res) throw new Error('token lookup: transaction aborted')
      const [[e1, raw], [e2, synced]] = res as [[Error | null, string | null], [Error | null, number]]
      if (e1 || e2) throw e1 ?? e2
      const value: TokenEntry | null = raw ? (JSON.parse(raw) as TokenEntry) : null
      if (!value && !synced) return 'not-synced'
      if (live && gen === generation) {
        if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string)
        cache.set(hash, { value, until: Date.now() + (value ? opts.ttlMs : negativeTtlMs) })
      }
      return value
    },
    size: () => cache.size,
    /** Whether changes are being heard (and so lookups cached); false between a reconnect and its confirmed SUBSCRIBE. */
    subscribed: () => live,
  }
}

export type TokenCache = ReturnType<typeof createTokenCache>
