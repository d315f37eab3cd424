// Admin-only settings, read once at start on top of the shared config (shared/config.ts).
// An invalid value stops the process with a message naming the variable, like everywhere else.
import { ConfigError, fail, int, type Config } from '../shared/config.ts'

export interface AdminConfig {
  /** The URL people open the panel at; decides the cookie's Secure default. */
  adminUrl: string
  /** Secure flag on the session cookie. Production runs behind TLS, so this is on unless the panel is on http://localhost. */
  cookieSecure: boolean
  /** Absolute lifetime of a log-in. */
  sessionTtlMs: number
  /** A session's `result.images` key with no uploaded media after this long counts as missing. */
  missingMediaDelayMs: number
  /** Failed log-ins allowed per email, and per client IP, within `loginWindowMs` before 429. */
  loginMaxPerEmail: number
  loginMaxPerIp: number
  loginWindowMs: number
  /** Behind a TLS-terminating proxy: take the client IP (for the log-in limiter) from X-Forwarded-For. */
  trustProxy: boolean
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

/** True when a browser reaches the panel over plain http on this machine, where a Secure cookie would not be sent. */
export function isLocalHttp(url: string): boolean {
  const u = new URL(url)
  return u.protocol === 'http:' && LOOPBACK.has(u.hostname)
}

export function loadAdminConfig(config: Config, env: Record<string, string | undefined> = process.env): AdminConfig {
  const rawUrl = env.ADMIN_URL || `http://127.0.0.1:${config.adminPort}`
  let adminUrl: string
  try {
    const u = new URL(rawUrl)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') fail('ADMIN_URL', 'must use http: or https:')
    adminUrl = rawUrl.replace(/\/+$/, '')
  } catch (err) {
    if (err instanceof ConfigError) throw err
    fail('ADMIN_URL', 'is not a valid URL')
  }
  const secureRaw = env.ADMIN_COOKIE_SECURE
  let cookieSecure: boolean
  if (secureRaw === undefined || secureRaw === '') cookieSecure = !isLocalHttp(adminUrl)
  else if (secureRaw === 'true' || secureRaw === '1') cookieSecure = true
  else if (secureRaw === 'false' || secureRaw === '0') cookieSecure = false
  else fail('ADMIN_COOKIE_SECURE', `must be true or false, got "${secureRaw}"`)
  return {
    adminUrl,
    cookieSecure,
    sessionTtlMs: int(env, 'ADMIN_SESSION_TTL_MS', 12 * 3600_000, 60_000),
    missingMediaDelayMs: int(env, 'ADMIN_MISSING_MEDIA_DELAY_MS', 3600_000, 0),
    loginMaxPerEmail: int(env, 'ADMIN_LOGIN_MAX_PER_EMAIL', 5, 1),
    loginMaxPerIp: int(env, 'ADMIN_LOGIN_MAX_PER_IP', 20, 1),
    loginWindowMs: int(env, 'ADMIN_LOGIN_WINDOW_MS', 15 * 60_000, 1000),
    trustProxy: env.ADMIN_TRUST_PROXY === 'true' || env.ADMIN_TRUST_PROXY === '1',
  }
}
