// The gateway's configuration: the shared sections it uses plus its own limits, read and
// validated once at start (gateway/run.ts). Every setting is in the README's configuration table.
import { fail, fraction, int, type Env } from '../shared/config-vars.ts'
import * as shared from '../shared/config.ts'

export interface GatewaySettings {
  port: number
  maxJsonBytes: number
  maxMediaBytes: number
  /** How long a DSN lookup is cached in process; revocations are pushed, so this only bounds staleness if a push is lost. */
  tokenCacheMs: number
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
   * closed. 0 = never drain (close at once).
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
  /** REDIS_WAIT_REPLICAS: replicas that must have a job before its 201 (gateway/replication.ts); 0 = do not wait. */
  redisWaitReplicas: number
  /** REDIS_WAIT_TIMEOUT_MS: how long that wait may take before the answer is 503 instead. */
  redisWaitTimeoutMs: number
}

/** The gateway reads no MongoDB and no public URL. */
export const loadGatewayConfig = shared.configLoader(
  [shared.processSettings, shared.redisSettings, shared.s3Settings, shared.tlsSettings, shared.idempotencySettings, shared.metricsSettings],
  gatewaySettings,
)
export type GatewayConfig = ReturnType<typeof loadGatewayConfig>

function gatewaySettings(env: Env): GatewaySettings {
  return {
    port: shared.gatewayPort(env),
    ...bodyLimits(env),
    ...timeouts(env),
    tokenCacheMs: int(env, 'TOKEN_CACHE_MS', 30_000, 0),
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
    maxInFlightPerToken: int(env, 'MAX_IN_FLIGHT_PER_TOKEN', 32, 0, 1_000_000),
    redisWaitReplicas: int(env, 'REDIS_WAIT_REPLICAS', 0, 0, 16),
    redisWaitTimeoutMs: int(env, 'REDIS_WAIT_TIMEOUT_MS', 1000, 10, 60_000),
  }
}

function bodyLimits(env: Env): Pick<GatewaySettings, 'maxJsonBytes' | 'maxMediaBytes' | 'workspaceBytesPerMinute'> {
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
  return { maxJsonBytes, maxMediaBytes, workspaceBytesPerMinute }
}

function timeouts(env: Env): Pick<GatewaySettings, 'requestTimeoutMs' | 'headersTimeoutMs' | 'keepAliveTimeoutMs'> {
  // A photo on a slow phone link takes minutes: the whole-request limit must leave room for it.
  const requestTimeoutMs = int(env, 'REQUEST_TIMEOUT_MS', 600_000, 1000, 3_600_000)
  const headersTimeoutMs = int(env, 'HEADERS_TIMEOUT_MS', 30_000, 1000, 3_600_000)
  if (headersTimeoutMs > requestTimeoutMs)
    fail('HEADERS_TIMEOUT_MS', `must not be more than REQUEST_TIMEOUT_MS (${requestTimeoutMs}), got ${headersTimeoutMs}`)
  return {
    requestTimeoutMs,
    headersTimeoutMs,
    // Longer than the usual load balancer idle timeout (60 s), so the balancer closes first and
    // never sends a request on a connection the gateway is closing.
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000, 3_600_000),
  }
}
