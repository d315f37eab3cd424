// Log-in attempts are limited in Redis per email and per client IP, each with a budget that
// refills (a token bucket: `max` attempts, one more every window / max). An attempt is charged
// to both budgets atomically (one Lua script) BEFORE its password is checked, so parallel
// guesses cannot all read "0 failures so far": at most `max` of them are ever verified, and the
// rest are answered 429 without running scrypt.
//
// A burst for one email costs that email's budget and only as many of the address's as were
// verified, so another admin behind the same address (a shared NAT, an untrusted proxy) still
// logs in at once. Spraying many emails from one address empties the address's budget, which
// then refills one attempt every window / max: guessing is slowed to that rate instead of the
// address being locked out for a whole window. A successful log-in refills its email's budget and
// gives back to the address only the one attempt it was charged (so log-ins that succeed cost the
// address nothing, and one good account never buys more guesses at others).
import { createHash } from 'node:crypto'
import type { RedisClient } from '../../shared/redis.ts'

export interface LoginLimiterOptions {
  prefix: string
  maxPerEmail: number
  maxPerIp: number
  /** A whole budget refills over this long. */
  windowMs: number
}

const h = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32)

// KEYS: email bucket, ip bucket. ARGV: email cap, ms per email token, ip cap, ms per ip token.
// Returns 0 when the attempt was charged to both, else the ms until both have one to spare.
const TAKE = `
local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
local function level(key, cap, refill)
  local v = redis.call('HMGET', key, 't', 'at')
  local t, at = tonumber(v[1]), tonumber(v[2])
  if t == nil or at == nil then return cap end
  return math.min(cap, t + math.max(0, now - at) / refill)
end
local ecap, erefill, icap, irefill = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local e = level(KEYS[1], ecap, erefill)
local i = level(KEYS[2], icap, irefill)
local wait = 0
if e < 1 then wait = math.max(wait, math.ceil((1 - e) * erefill)) end
if i < 1 then wait = math.max(wait, math.ceil((1 - i) * irefill)) end
if wait > 0 then return wait end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', e - 1), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(ecap * erefill))
redis.call('HSET', KEYS[2], 't', string.format('%.6f', i - 1), 'at', now)
redis.call('PEXPIRE', KEYS[2], math.ceil(icap * irefill))
return 0
`

// KEYS: email bucket, ip bucket. ARGV: ip cap.
const SUCCEED = `
redis.call('DEL', KEYS[1])
local v = redis.call('HMGET', KEYS[2], 't')
if v[1] then
  redis.call('HSET', KEYS[2], 't', string.format('%.6f', math.min(tonumber(ARGV[1]), tonumber(v[1]) + 1)))
end
return 0
`

export function createLoginLimiter(redis: RedisClient, opts: LoginLimiterOptions) {
  // Hashed, so neither emails nor addresses sit in Redis in clear.
  const emailKey = (email: string) => `${opts.prefix}:admin:login-fail:e:${h(email)}`
  const ipKey = (ip: string) => `${opts.prefix}:admin:login-fail:i:${h(ip)}`
  const emailRefill = opts.windowMs / opts.maxPerEmail
  const ipRefill = opts.windowMs / opts.maxPerIp

  return {
    /** Charges one attempt to the email and the address: null when it may go ahead, else how many ms until it may. */
    async take(email: string, ip: string): Promise<number | null> {
      const wait = Number(await redis.eval(TAKE, 2, emailKey(email), ipKey(ip), opts.maxPerEmail, emailRefill, opts.maxPerIp, ipRefill))
      return wait > 0 ? Math.max(wait, 1000) : null
    },
    /** A successful log-in: the email's budget is full again, and the address gets back the attempt it was charged. */
    async succeed(email: string, ip: string): Promise<void> {
      await redis.eval(SUCCEED, 2, emailKey(email), ipKey(ip), opts.maxPerIp)
    },
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>
