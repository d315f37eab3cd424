// buildGateway(deps) returns the Fastify app; run.ts runs it as a process and server.ts only
// starts that. The gateway is deliberately thin: authenticate the DSN, claim the idempotency key,
// enqueue, answer.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify'
import type { GatewayConfig } from './config.ts'
import { redactUrl } from '../shared/logger.ts'
import { createAuthenticator } from './auth.ts'
import { createBacklogMonitor, type BacklogMonitor } from './backlog.ts'
import { installBodyDrain } from './drain.ts'
import { errorHandler } from './errors.ts'
import { createInFlightLimiter } from './in-flight.ts'
import { createIdempotencyStore } from '../shared/idempotency.ts'
import { createReplicationWait } from './replication.ts'
import redisPlugin from './plugins/redis.ts'
import queuesPlugin from './plugins/queues.ts'
import metricsPlugin from './plugins/metrics.ts'
import healthRoutes from './routes/health.ts'
import jsonIngestRoutes from './routes/json-ingest.ts'
import mediaRoutes from './routes/media.ts'
import { createTokenCache, type TokenCache } from './token-cache.ts'
import { createUnknownTokenLimiter } from './unknown-token-limit.ts'
import { keys } from '../shared/keys.ts'
import { keepScriptsLoaded, type ScriptLoader } from '../shared/redis-scripts.ts'
import { defineStagingCommands } from '../shared/staged-media.ts'
import { gatewayServerOptions, type LateParts } from './server-options.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The backpressure poller (backlog.ts); `snapshot()` has the figures for metrics. */
    backlog: BacklogMonitor
    /** The DSN lookup cache (token-cache.ts); `subscribed()` tells whether token changes are being heard. */
    tokenCache: TokenCache
    /** Whether every Lua script is loaded on the current Redis connection (/readyz waits for it). */
    scripts: ScriptLoader
    /** Every route as registered, with its schema (test/openapi.test.ts compares them with the OpenAPI document). */
    gatewayRoutes: { method: string; url: string; schema: FastifySchema | undefined }[]
  }
}

export interface GatewayDeps {
  config: GatewayConfig
  /** A logger to use instead of a new pino instance (tests capture output this way). */
  logger?: FastifyBaseLogger | false
  /** Test hooks, given only by the fault suite (faults/lib/gateway-with-hooks.ts); a deployment never sets them. */
  hooks?: GatewayHooks
}

export interface GatewayHooks {
  /**
   * The session route sleeps this long between claiming the idempotency key and enqueueing, so a fault test can kill a gateway
   * inside that window.
   */
  pauseAfterClaimMs?: number
}

/** The answers every route shares: errors, 404, one log line per request (DSN redacted), and the route list. */
function installAnswers(app: FastifyInstance): void {
  app.decorate('gatewayRoutes', [])
  app.addHook(
    'onRoute',
    (r) => void app.gatewayRoutes.push(...[r.method].flat().map((method) => ({ method, url: r.url, schema: r.schema }))),
  )
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((request, reply) => {
    request.log.info({ url: redactUrl(request.url) }, 'no such route')
    reply.code(404).send({ error: 'not_found', message: 'no such route' })
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    )
  })
}

/** DSN authentication: the token cache (kept current by pushes), and the per-address limit on unknown tokens. */
function createAuthentication(app: FastifyInstance, config: GatewayConfig) {
  const tokens = createTokenCache(app.redis, app.subscriber, {
    prefix: config.redisPrefix,
    ttlMs: config.tokenCacheMs,
    onRead: () => app.observeTokenRead(),
  })
  app.decorate('tokenCache', tokens)
  const unknownTokens =
    config.unknownTokenMaxPerIp > 0
      ? createUnknownTokenLimiter(app.redis, {
          keyFor: keys(config.redisPrefix).unknownTokenIp,
          max: config.unknownTokenMaxPerIp,
          windowMs: config.unknownTokenWindowMs,
        })
      : undefined
  return createAuthenticator(tokens, { shards: app.shards, defaultRateLimitPerMinute: config.rateLimitPerMinute, unknownTokens })
}

/** One backpressure poller per gateway; requests only read its verdict (no Redis round trip of their own). */
function startBackpressure(app: FastifyInstance, config: GatewayConfig): BacklogMonitor {
  const backlog = createBacklogMonitor(app.redis, {
    prefixes: app.shards.map((s) => s.prefix),
    backlogHighWater: config.backlogHighWater,
    stagedMediaHighWaterBytes: config.stagedMediaHighWaterBytes,
    memoryHighWater: config.redisMemoryHighWater,
    intervalMs: config.backpressurePollMs,
    logger: app.log,
  })
  app.decorate('backlog', backlog)
  // Registered after the queues and Redis plugins, so it runs before they close.
  app.addHook('onClose', () => backlog.stop())
  backlog.start()
  return backlog
}

/**
 * Every script the request path runs is in Redis's cache before the gateway counts as ready
 * (/readyz), on every connection: shared/redis-scripts.ts says what went wrong without it.
 */
function keepRequestScriptsLoaded(app: FastifyInstance): void {
  defineStagingCommands(app.redis)
  const scripts = keepScriptsLoaded(app.redis, {
    // BullMQ defines its scripts once its connection is initialised.
    before: () => Promise.all(app.shards.flatMap((s) => Object.values(s.queues)).map((q) => q.waitUntilReady())),
    onError: (err) => app.log.warn({ err: (err as Error).message }, 'could not load the Redis scripts; retrying'),
  })
  app.decorate('scripts', scripts)
}

export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const { config, logger } = deps
  // Node's clientError handler needs the app and the body drain, which exist only later.
  const late: LateParts = {}
  const app = Fastify(gatewayServerOptions(config, logger, late))
  late.app = app
  installAnswers(app)

  await app.register(redisPlugin, { target: config })
  await app.register(queuesPlugin, { redisPrefix: config.redisPrefix, redisShards: config.redisShards })
  // Before the routes, so its onResponse hook sees every one; served by run.ts on METRICS_PORT.
  // The backlog poller is created below; its figures are read lazily, at scrape time.
  const inFlight = createInFlightLimiter(config.maxInFlightPerToken)
  await app.register(metricsPlugin, {
    redisPrefix: config.redisPrefix,
    backlog: () => (app.hasDecorator('backlog') ? app.backlog.snapshot() : null),
    guards: () => ({ inFlight: inFlight.inFlight(), draining: late.drain?.active() ?? 0 }),
  })
  // An answer sent before the body was read (a refusal, a duplicate photo's 409) must reach the
  // device: the rest of the body is read and discarded, within bounds (drain.ts).
  late.drain = installBodyDrain(app, {
    maxBytes: config.drainMaxBytes,
    timeoutMs: config.drainTimeoutMs,
    acceptedMaxBytes: config.maxMediaBytes,
    onOutcome: (outcome) => app.observeDrain(outcome),
  })

  const authenticate = createAuthentication(app, config)
  const backlog = startBackpressure(app, config)
  const idempotency = createIdempotencyStore(app.redis, { pendingTimeoutMs: config.pendingTimeoutMs, ttlMs: config.idempotencyTtlMs })
  keepRequestScriptsLoaded(app)
  const common = {
    confirmReplicated: createReplicationWait(app.redis, config.redisWaitReplicas, config.redisWaitTimeoutMs),
    idempotency,
    authenticate,
    backlog,
    backpressureRetryAfterS: config.backpressureRetryAfterS,
    inFlight,
    workspaceBytesPerMinute: config.workspaceBytesPerMinute,
  }

  await app.register(healthRoutes)
  await app.register(jsonIngestRoutes, {
    ...common,
    maxJsonBytes: config.maxJsonBytes,
    pauseAfterClaimMs: deps.hooks?.pauseAfterClaimMs,
  })
  await app.register(mediaRoutes, {
    ...common,
    s3: config.s3,
    maxMediaBytes: config.maxMediaBytes,
    pendingTimeoutMs: config.pendingTimeoutMs,
  })
  return app
}
