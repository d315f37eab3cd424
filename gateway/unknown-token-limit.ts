// Slows down DSN guessing: requests whose token is unknown are counted per client
// address, in Redis so every gateway shares the count (fixed window). Past the limit the address
// gets 429 + Retry-After for its UNKNOWN tokens until the window ends; its valid tokens are
// served as always. Phones share addresses behind carrier NAT, so refusing every
// token of an address let anyone on a clinic's NAT block the clinic. Serving the valid ones
// tells a guesser nothing it can use: a token is 256 random bits, and a guess that hit would be
// served anyway; what the limit does is hold each address to `max` guesses per window.
//
// Cost: one Redis round trip, only on the unknown-token refusal path (the accepted path never
// counts). Once this process has seen that an address is over, it refuses that address's unknown
// tokens from memory, without counting them; the token lookup itself still runs (served from the
// token cache or one read of the Redis mirror), since a valid token from that address is served.
//
// Addresses behind one NAT share a count, so the default limit is generous: a phone with a
// mistyped DSN retries with backoff and stays far below it. IPv6 clients are counted per /64,
// the block one subscriber usually gets, or one client could rotate through addresses.
import { isIP } from 'node:net'
import type { RedisClient } from '../shared/redis.ts'

// KEYS: the address's counter. ARGV: window (ms). Returns {count, ms left in the window}.
const COUNT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`

/** What an address is counted as: IPv4 as is (also when IPv4-mapped), IPv6 by its /64. */
export function addressKey(ip: string | undefined): string {
  if (!ip) return 'unknown'
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)
  if (mapped) return mapped[1]!
  const bare = ip.replace(/%.*$/, '') // zone id (fe80::1%eth0)
  if (isIP(bare) !== 6 || bare.includes('.')) return bare.toLowerCase()
  const [head = '', tail] = bare.toLowerCase().split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`
}

export interface UnknownTokenLimitOptions {
  /** Builds the Redis key of an address's counter (keys(prefix).unknownTokenIp). */
  keyFor: (address: string) => string
  /** Unknown-token requests allowed per address per window; the next one is answered 429. */
  max: number
  windowMs: number
  /** Bound on the in-process list of blocked addresses (an attacker can use many). */
  maxTracked?: number
}

type CountRedis = RedisClient & { rdtCountUnknownToken(key: string, windowMs: number): Promise<[number, number]> }

export function createUnknownTokenLimiter(redis: RedisClient, opts: UnknownTokenLimitOptions) {
  const r = redis as CountRedis
  if (typeof (redis as unknown as Partial<CountRedis>).rdtCountUnknownToken !== 'function') {
    redis.defineCommand('rdtCountUnknownToken', { numberOfKeys: 1, lua: COUNT })
  }
  const maxTracked = opts.maxTracked ?? 100_000
  /** address -> blocked until (epoch ms). */
  const blocked = new Map<string, number>()

  return {
    /** Milliseconds this address must still wait, from memory only (0: not known to be over). */
    blockedFor(ip: string | undefined): number {
      const address = addressKey(ip)
      const until = blocked.get(address)
      if (until === undefined) return 0
      const left = until - Date.now()
      if (left > 0) return left
      blocked.delete(address)
      return 0
    },
    /** Counts one unknown-token request; returns the milliseconds to wait if the address is now over the limit, else 0. */
    async record(ip: string | undefined): Promise<number> {
      const address = addressKey(ip)
      const [count, ttl] = await r.rdtCountUnknownToken(opts.keyFor(address), opts.windowMs)
      if (count <= opts.max) return 0
      if (!blocked.has(address) && blocked.size >= maxTracked) blocked.delete(blocked.keys().next().value as string)
      blocked.set(address, Date.now() + ttl)
      return Math.max(1, ttl)
    },
    /** How many addresses this process currently refuses from memory (for metrics). */
    blockedCount: () => blocked.size,
  }
}

export type UnknownTokenLimiter = ReturnType<typeof createUnknownTokenLimiter>
