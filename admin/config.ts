// The admin panel's configuration, read and validated once at start (admin/server.ts): the
// shared sections the panel uses (AdminServerConfig), then the panel's own settings (AdminConfig),
// which depend on whether it serves HTTPS. An invalid value stops the process with a message
// naming the variable, like everywhere else.
import { ConfigError, fail, int, type Env } from '../shared/config-vars.ts'
import * as shared from '../shared/config.ts'

/** What the panel connects to and serves on: photos come from S3, DSNs are printed with PUBLIC_URL. */
export const loadAdminServerConfig = shared.configLoader(
  [shared.processSettings, shared.redisSettings, shared.mongoSettings, shared.s3Settings, shared.tlsSettings, shared.publicUrlSettings],
  (env) => ({ adminPort: int(env, 'ADMIN_PORT', 8081, 0, 65535) }),
)
export type AdminServerConfig = ReturnType<typeof loadAdminServerConfig>

export interface AdminConfig {
  /** The URL people open the panel at; decides the cookie's Secure default. */
  adminUrl: string
  /** Secure flag on the session cookie. Production runs behind TLS, so this is on unless the panel is on http://localhost. */
  cookieSecure: boolean
  /** Absolute lifetime of a log-in. */
  sessionTtlMs: number
  /** A session's `result.images` key with no uploaded media after this long counts as missing. */
  missingMediaDelayMs: number
  /**
   * Log-in attempts allowed per email, and per client IP: a budget of this many that refills
   * over `loginWindowMs` (one attempt back every window / max). Past it, 429 before any password
   * is checked. A successful log-in refills the email's budget and gives back its IP attempt.
   */
  loginMaxPerEmail: number
  loginMaxPerIp: number
  loginWindowMs: number
  /** scrypt verifications running at once in this process (each holds 128 MiB at N=2^17); more wait. */
  loginMaxInFlight: number
  /**
   * Proxies in front of the panel whose X-Forwarded-For is trusted for the client address (the
   * rightmost `hops` entries; anything a client put further left is ignored). 0 = the socket's address.
   */
  trustProxyHops: number
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

/** True when a browser reaches the panel over plain http on this machine, where a Secure cookie would not be sent. */
export function isLocalHttp(url: string): boolean {
  const u = new URL(url)
  return u.protocol === 'http:' && LOOPBACK.has(u.hostname)
}

export function loadAdminConfig(config: Pick<AdminServerConfig, 'tls' | 'adminPort'>, env: Env = process.env): AdminConfig {
  // Serving HTTPS itself (TLS_CERT_FILE), the panel is only reachable over https: its URL and its
  // cookies say so, whatever the defaults for plain http would be.
  const servesTls = config.tls !== null
  const rawUrl = env.ADMIN_URL || `${servesTls ? 'https' : 'http'}://127.0.0.1:${config.adminPort}`
  let adminUrl: string
  try {
    const u = new URL(rawUrl)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') fail('ADMIN_URL', 'must use http: or https:')
    if (servesTls && u.protocol !== 'https:') fail('ADMIN_URL', 'must use https: when the panel serves HTTPS itself (TLS_CERT_FILE is set)')
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
  // Over https a cookie without Secure (and without the __Host- prefix) buys nothing and could be
  // overwritten from a plain-http page of the same host.
  if (servesTls && !cookieSecure) fail('ADMIN_COOKIE_SECURE', 'must not be false when the panel serves HTTPS itself (TLS_CERT_FILE is set)')
  return {
    adminUrl,
    cookieSecure,
    sessionTtlMs: int(env, 'ADMIN_SESSION_TTL_MS', 12 * 3600_000, 60_000),
    missingMediaDelayMs: int(env, 'ADMIN_MISSING_MEDIA_DELAY_MS', 3600_000, 0),
    loginMaxPerEmail: int(env, 'ADMIN_LOGIN_MAX_PER_EMAIL', 5, 1),
    loginMaxPerIp: int(env, 'ADMIN_LOGIN_MAX_PER_IP', 20, 1),
    loginWindowMs: int(env, 'ADMIN_LOGIN_WINDOW_MS', 15 * 60_000, 1000),
    loginMaxInFlight: int(env, 'ADMIN_LOGIN_MAX_IN_FLIGHT', 2, 1, 64),
    trustProxyHops: trustProxyHops(env),
  }
}

/**
 * ADMIN_TRUST_PROXY_HOPS wins; otherwise ADMIN_TRUST_PROXY=true (the older setting, which
 * compose.yaml uses behind its one Caddy) means exactly one hop, never "trust every hop".
 */
function trustProxyHops(env: Env): number {
  const legacy = env.ADMIN_TRUST_PROXY
  let legacyHops = 0
  if (legacy === 'true' || legacy === '1') legacyHops = 1
  else if (legacy !== undefined && legacy !== '' && legacy !== 'false' && legacy !== '0')
    fail('ADMIN_TRUST_PROXY', `must be true or false, got "${legacy}"`)
  const hops = env.ADMIN_TRUST_PROXY_HOPS
  if (hops === undefined || hops === '') return legacyHops
  return int(env, 'ADMIN_TRUST_PROXY_HOPS', 0, 0, 10)
}
