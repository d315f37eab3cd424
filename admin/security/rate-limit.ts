// Failed log-ins are counted in Redis per email and per client IP (fixed window). Once either
// count reaches its limit, further attempts are answered 429 before any password is checked,
// which also stops the limiter from being used to burn CPU on scrypt.
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

export interface LoginLimiterOptions {
  prefix: string
  maxPerEmail: number
  maxPerIp: number
  windowMs: number
}

const h = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 32)

export function createLoginLimiter(redis: Redis, opts: LoginLimiterOptions) {
  // Hashed, so neither emails nor addresses sit in Redis in clear.
  const emailKey = (email: string) => `${opts.prefix}:admin:login-fail:e:${h(email)}`
  const ipKey = (ip: string) => `${opts.prefix}:admin:login-fail:i:${h(ip)}`

  return {
    /** Null when an attempt may go ahead, else how many ms until it may. */
    async blocked(email: string, ip: string): Promise<number | null> {
      const res = await redis.multi().get(emailKey(email)).pttl(emailKey(email)).get(ipKey(ip)).pttl(ipKey(ip)).exec()
      const v = (i: number) => Number(res?.[i]?.[1] ?? 0) || 0
      const waits: number[] = []
      if (v(0) >= opts.maxPerEmail) waits.push(Math.max(v(1), 1000))
      if (v(2) >= opts.maxPerIp) waits.push(Math.max(v(3), 1000))
      return waits.length ? Math.max(...waits) : null
    },
    async fail(email: string, ip: string): Promise<void> {
      const pipe = redis.multi()
      for (const k of [emailKey(email), ipKey(ip)]) {
        pipe.incr(k)
        // NX: the window starts at the first failure and is not pushed back by later ones.
        pipe.pexpire(k, opts.windowMs, 'NX')
      }
      await pipe.exec()
    },
    /** A successful log-in clears the email's count (not the IP's: one good account must not unlock guessing others). */
    async succeed(email: string): Promise<void> {
      await redis.del(emailKey(email))
    },
  }
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>
