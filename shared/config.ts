// Configuration is read and validated once, at process start. An invalid value stops the
// process with a message that names the variable, so operators never chase a vague crash later.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { QUEUE_NAMES, type QueueName } from './queue-settings.ts'

export interface Config {
  host: string
  port: number
  adminPort: number
  publicUrl: string
  redisUrl: string
  mongodbUrl: string
  s3: { endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string }
  /** BullMQ prefix and the prefix of every other Redis key we own. A hash tag keeps one slot on a Redis Cluster. */
  redisPrefix: string
  maxJsonBytes: number
  maxMediaBytes: number
  logLevel: string
  /** How long a DSN lookup is cached in process; revocations are pushed, so this only bounds staleness if a push is lost. */
  tokenCacheMs: number
  /** A "pending" idempotency key older than this counts as free (its request died before enqueueing). */
  pendingTimeoutMs: number
  /** How long the fast 409 answer is remembered in Redis; MongoDB's unique indexes stay the final authority. */
  idempotencyTtlMs: number
  /**
   * Jobs in flight per queue in one worker process. Each session/logs job waits on its batch's
   * insertMany, so a queue drains at about concurrency / write latency (Little's law): small
   * session jobs want many in flight; logs bodies (up to MAX_JSON_BYTES) and photos (read and
   * hashed while copied) hold more memory each, so their queues keep fewer.
   */
  workerConcurrency: Record<QueueName, number>
  /** Which queues this worker process serves, so operators can scale each queue on its own. */
  workerQueues: string[]
  /**
   * BullMQ job lock: a worker renews it every half of this while a job runs. The jobs of a worker
   * that died are run again by another worker once their lock has expired and a stalled check
   * (every `workerStalledIntervalMs`) has seen it: roughly within lock + 2 x interval.
   */
  workerLockMs: number
  workerStalledIntervalMs: number
  /**
   * TEST HOOK (RDT_FAULT_PAUSE_AFTER_CLAIM_MS, default 0 = off): the session route sleeps this
   * long between claiming the idempotency key and enqueueing, so the fault suite can kill a
   * gateway inside that window for real. Never set it in a deployment.
   */
  faultPauseAfterClaimMs: number
  sweepIntervalMs: number
  stagingGraceMs: number
  mongoWriteConcern: string | number
  /** Port of the process's own Prometheus listener (/metrics, /healthz); null = the process default (gateway 9464, worker 9465), 0 = off. */
  metricsPort: number | null
  /** Requests per minute per token (burst of the same size), unless its workspace sets its own; 0 = no limit. */
  rateLimitPerMinute: number
  /** Requests with an unknown token allowed per client address per window, before that address gets 429 (0 = no limit). */
  unknownTokenMaxPerIp: number
  unknownTokenWindowMs: number
  /** Proxy hops in front of the gateway whose X-Forwarded-For is trusted (0 = use the socket address). */
  trustProxyHops: number
  /** Backpressure: a queue whose waiting + delayed jobs reach this refuses new work with 503 (0 = off). */
  backlogHighWater: number
  /** Backpressure: staged photo bytes not yet processed at which media gets 503 (0 = off). */
  stagedMediaHighWaterBytes: number
  /** Backpressure: fraction of Redis maxmemory at which every ingest gets 503 (0 = off; ignored without maxmemory). */
  redisMemoryHighWater: number
  /** How often each gateway polls the figures above (one pipelined round trip). */
  backpressurePollMs: number
  /** Retry-After (seconds) sent with a backpressure 503. */
  backpressureRetryAfterS: number
  /**
   * An answer sent before the request body was read (a refusal, or a duplicate photo's 409) does
   * not cut the connection: the rest of the body is read and discarded so that the client, which
   * writes its whole body before it reads, sees the answer (gateway/drain.ts). A refusal's body is
   * drained up to this many bytes and for at most `drainTimeoutMs`; past either, the connection is
   * closed. 0 = never drain (close at once, as before).
   */
  drainMaxBytes: number
  drainTimeoutMs: number
  /** Time a client has to send a whole request, headers and body (Node's requestTimeout); answered 408 and closed past it. */
  requestTimeoutMs: number
  /** Time a client has to send the request headers (Node's headersTimeout); at most requestTimeoutMs. */
  headersTimeoutMs: number
  /** How long an idle keep-alive connection is kept open between requests. */
  keepAliveTimeoutMs: number
  /** Uploads in flight per token on one gateway (in process); the next one gets 429 (0 = no cap). */
  maxInFlightPerToken: number
  /** Request body bytes per workspace per minute, across every gateway (in Redis); past it, 429 (0 = no budget). */
  workspaceBytesPerMinute: number
  /** Log entries stored as test_session_logs documents per logs body; the rest stay in the batch's raw_body only. */
  logsMaxEntries: number
  /**
   * TLS_CERT_FILE + TLS_KEY_FILE, read at start: the gateway and the admin panel then serve HTTPS
   * themselves (a single box without a proxy; compose puts Caddy in front instead). null = plain
   * HTTP. The metrics listeners stay plain HTTP on their own port either way.
   */
  tls: TlsFiles | null
}

export interface TlsFiles {
  certFile: string
  keyFile: string
  /** PEM: the server certificate, optionally followed by its intermediates. */
  cert: Buffer
  key: Buffer
}

/** The repository root, found from this file rather than the cwd (works from dist/ too). */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Reads `.stack/env` written by the local stack launcher; missing file means "no local stack". */
export function readStackEnv(file = join(repoRoot, '.stack', 'env')): Record<string, string> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return {}
  }
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (m) out[m[1]!] = m[2]!
  }
  return out
}

export class ConfigError extends Error {}

export function fail(name: string, why: string): never {
  throw new ConfigError(`invalid configuration: ${name} ${why}`)
}

/** A whole-number variable with bounds; used by every config loader. */
export function int(env: Record<string, string | undefined>, name: string, def: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (!/^\d+$/.test(raw)) fail(name, `must be a whole number, got "${raw}"`)
  const n = Number(raw)
  if (n < min || n > max) fail(name, `must be between ${min} and ${max}, got ${n}`)
  return n
}

/** Per-queue defaults; WORKER_CONCURRENCY sets every queue, WORKER_CONCURRENCY_<QUEUE> one queue (it wins). */
const CONCURRENCY_DEFAULTS: Record<QueueName, number> = { sessions: 256, logs: 64, media: 64 }

function workerConcurrency(env: Record<string, string | undefined>): Config['workerConcurrency'] {
  const all = env.WORKER_CONCURRENCY ? int(env, 'WORKER_CONCURRENCY', 64, 1, 10_000) : undefined
  const one = (queue: QueueName) => int(env, `WORKER_CONCURRENCY_${queue.toUpperCase()}`, all ?? CONCURRENCY_DEFAULTS[queue], 1, 10_000)
  return Object.fromEntries(QUEUE_NAMES.map((q) => [q, one(q)])) as Config['workerConcurrency']
}

/**
 * Both or neither. The files are read and paired now, so a typo, an unreadable key or a key of
 * another certificate stops the process at start, naming the variable, instead of at the first
 * handshake.
 */
function tlsFiles(env: Record<string, string | undefined>): TlsFiles | null {
  const certFile = env.TLS_CERT_FILE
  const keyFile = env.TLS_KEY_FILE
  if (!certFile && !keyFile) return null
  if (!certFile) fail('TLS_CERT_FILE', 'is required when TLS_KEY_FILE is set (set both or neither)')
  if (!keyFile) fail('TLS_KEY_FILE', 'is required when TLS_CERT_FILE is set (set both or neither)')
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file)
    } catch (err) {
      fail(name, `cannot be read: ${(err as Error).message}`)
    }
  }
  const cert = read('TLS_CERT_FILE', certFile)
  const key = read('TLS_KEY_FILE', keyFile)
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    fail('TLS_KEY_FILE', `is not the key of the certificate in TLS_CERT_FILE, or one of them is not PEM (${(err as Error).message})`)
  }
  return { certFile, keyFile, cert, key }
}

/** A fraction in [0, 1], e.g. 0.9. */
function fraction(env: Record<string, string | undefined>, name: string, def: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return def
  if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(raw)) fail(name, `must be a number from 0 to 1 (e.g. 0.9), got "${raw}"`)
  return Number(raw)
}

function url(env: Record<string, string | undefined>, name: string, protocols: string[], def?: string): string {
  const raw = env[name] || def
  if (!raw) fail(name, 'is required (run `npm run stack`, or set it)')
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    fail(name, 'is not a valid URL')
  }
  if (!protocols.includes(u.protocol)) fail(name, `must use ${protocols.join(' or ')}`)
  return raw
}

/**
 * Builds the config from the environment. A variable that is unset falls back to `.stack/env`,
 * so `npm run gateway` just works next to `npm run stack`.
 */
export function loadConfig(processEnv: Record<string, string | undefined> = process.env, stackEnv = readStackEnv()): Config {
  const env: Record<string, string | undefined> = { ...stackEnv }
  for (const [k, v] of Object.entries(processEnv)) if (v !== undefined && v !== '') env[k] = v

  const port = int(env, 'PORT', 8080, 0, 65535)
  const publicUrl = url(env, 'PUBLIC_URL', ['http:', 'https:'], `http://127.0.0.1:${port}`).replace(/\/+$/, '')
  const prefix = env.REDIS_PREFIX || '{rdt}'
  if (!/^[A-Za-z0-9{}_-]{1,64}$/.test(prefix) || prefix.includes(':')) fail('REDIS_PREFIX', 'must be 1-64 of [A-Za-z0-9{}_-]')
  const queues = (env.WORKER_QUEUES || 'sessions,logs,media')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  const wc = env.MONGODB_WRITE_CONCERN || 'majority'
  if (!/^(majority|\d+)$/.test(wc)) fail('MONGODB_WRITE_CONCERN', 'must be "majority" or a number')

  // Capped so that a body kept verbatim (plus its fallback record) always fits MongoDB's 16 MB documents.
  const maxJsonBytes = int(env, 'MAX_JSON_BYTES', 5 * 1024 * 1024, 1024, 6 * 1024 * 1024)
  const maxMediaBytes = int(env, 'MAX_MEDIA_BYTES', 50 * 1024 * 1024, 1024)
  // A budget smaller than one body at the size limit would refuse that body for ever (429 is retried).
  const workspaceBytesPerMinute = int(env, 'WORKSPACE_BYTES_PER_MINUTE', 256 * 1024 * 1024, 0)
  const largestBody = Math.max(maxJsonBytes, maxMediaBytes)
  if (workspaceBytesPerMinute > 0 && workspaceBytesPerMinute < largestBody) {
    fail(
      'WORKSPACE_BYTES_PER_MINUTE',
      `must be 0 (off) or at least the largest body allowed (${largestBody} bytes, MAX_JSON_BYTES / MAX_MEDIA_BYTES), got ${workspaceBytesPerMinute}`,
    )
  }
  // A photo on a slow phone link takes minutes: the whole-request limit must leave room for it.
  const requestTimeoutMs = int(env, 'REQUEST_TIMEOUT_MS', 600_000, 1000, 3_600_000)
  const headersTimeoutMs = int(env, 'HEADERS_TIMEOUT_MS', 30_000, 1000, 3_600_000)
  if (headersTimeoutMs > requestTimeoutMs)
    fail('HEADERS_TIMEOUT_MS', `must not be more than REQUEST_TIMEOUT_MS (${requestTimeoutMs}), got ${headersTimeoutMs}`)

  return {
    host: env.HOST || '127.0.0.1',
    port,
    adminPort: int(env, 'ADMIN_PORT', 8081, 0, 65535),
    publicUrl,
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    mongodbUrl: url(env, 'MONGODB_URL', ['mongodb:', 'mongodb+srv:']),
    s3: {
      endpoint: url(env, 'S3_ENDPOINT', ['http:', 'https:']),
      accessKey: env.S3_ACCESS_KEY || fail('S3_ACCESS_KEY', 'is required'),
      secretKey: env.S3_SECRET_KEY || fail('S3_SECRET_KEY', 'is required'),
      bucket: env.S3_BUCKET || 'rdt-media',
      region: env.S3_REGION || 'us-east-1',
    },
    redisPrefix: prefix,
    maxJsonBytes,
    maxMediaBytes,
    logLevel: env.LOG_LEVEL || 'info',
    tokenCacheMs: int(env, 'TOKEN_CACHE_MS', 30_000, 0),
    pendingTimeoutMs: int(env, 'PENDING_TIMEOUT_MS', 10_000, 100),
    // A day covers a device's retry backoff (capped at 5 h) several times over; after that a late
    // replay is accepted again and deduplicated by MongoDB, and Redis memory stays bounded.
    idempotencyTtlMs: int(env, 'IDEMPOTENCY_TTL_MS', 24 * 3600_000, 60_000),
    workerConcurrency: workerConcurrency(env),
    workerQueues: queues,
    workerLockMs: int(env, 'WORKER_LOCK_MS', 30_000, 1000),
    workerStalledIntervalMs: int(env, 'WORKER_STALLED_INTERVAL_MS', 30_000, 1000),
    faultPauseAfterClaimMs: int(env, 'RDT_FAULT_PAUSE_AFTER_CLAIM_MS', 0, 0, 600_000),
    sweepIntervalMs: int(env, 'SWEEP_INTERVAL_MS', 60_000, 100),
    stagingGraceMs: int(env, 'STAGING_GRACE_MS', 10 * 60_000, 0),
    mongoWriteConcern: wc === 'majority' ? wc : Number(wc),
    metricsPort: env.METRICS_PORT ? int(env, 'METRICS_PORT', 0, 0, 65535) : null,
    rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 600, 0, 1_000_000),
    unknownTokenMaxPerIp: int(env, 'UNKNOWN_TOKEN_MAX_PER_IP', 60, 0, 1_000_000),
    unknownTokenWindowMs: int(env, 'UNKNOWN_TOKEN_WINDOW_MS', 60_000, 1000, 24 * 3600_000),
    trustProxyHops: int(env, 'TRUST_PROXY_HOPS', 0, 0, 10),
    backlogHighWater: int(env, 'BACKLOG_HIGH_WATER', 100_000, 0),
    stagedMediaHighWaterBytes: int(env, 'STAGED_MEDIA_HIGH_WATER_BYTES', 10 * 1024 ** 3, 0),
    redisMemoryHighWater: fraction(env, 'REDIS_MEMORY_HIGH_WATER', 0.9),
    backpressurePollMs: int(env, 'BACKPRESSURE_POLL_MS', 500, 50, 60_000),
    backpressureRetryAfterS: int(env, 'BACKPRESSURE_RETRY_AFTER_S', 30, 1, 3600),
    drainMaxBytes: int(env, 'DRAIN_MAX_BYTES', 64 * 1024 * 1024, 0),
    drainTimeoutMs: int(env, 'DRAIN_TIMEOUT_MS', 30_000, 100, 3_600_000),
    requestTimeoutMs,
    headersTimeoutMs,
    // Longer than the usual load balancer idle timeout (60 s), so the balancer closes first and
    // never sends a request on a connection the gateway is closing.
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 3_600_000),
    maxInFlightPerToken: int(env, 'MAX_IN_FLIGHT_PER_TOKEN', 32, 0, 1_000_000),
    workspaceBytesPerMinute,
    logsMaxEntries: int(env, 'LOGS_MAX_ENTRIES', 10_000, 1, 10_000_000),
    tls: tlsFiles(env),
  }
}
