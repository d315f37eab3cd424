// buildGateway(deps) returns the Fastify app; server.ts only starts it. The gateway is
// deliberately thin: authenticate the DSN, claim the idempotency key, enqueue, answer.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifySchema } from 'fastify'
import type { Socket } from 'node:net'
import type { Config } from '../shared/config.ts'
import { loggerOptions, redactUrl } from '../shared/logger.ts'
import { createAuthenticator } from './auth.ts'
import { createBacklogMonitor, type BacklogMonitor } from './backlog.ts'
import { installBodyDrain, type BodyDrain } from './drain.ts'
import { errorHandler } from './errors.ts'
import { createInFlightLimiter } from './in-flight.ts'
import { createIdempotencyStore } from './idempotency.ts'
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
import { httpsOption } from '../shared/https-option.ts'

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
  config: Config
  /** A logger to use instead of a new pino instance (tests capture output this way). */
  logger?: FastifyBaseLogger | false
}

/** Node's answers to a request it refuses below Fastify: status, metrics reason, message. */
function clientErrorAnswer(code: string | undefined): [number, string, string] {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request_timeout', 'the request was not received in time']
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'header_too_large', 'the request headers are too large']
  return [400, 'bad_request', 'the request is not valid HTTP']
}

export async function buildGateway({ config, logger }: GatewayDeps): Promise<FastifyInstance> {
  // Created once the app exists; Node's clientError handler below needs it.
  let drain: BodyDrain | undefined
  const serverOptions = {
    headersTimeout: config.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(Math.min(config.headersTimeoutMs, config.requestTimeoutMs) / 4))),
  }
  const app = Fastify({
    loggerInstance: logger || undefined,
    logger: logger === undefined ? loggerOptions(config.logLevel, 'gateway') : undefined,
    // The real client appends '/' to every path; accept both forms.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    // One line per request from our onResponse hook (with the DSN redacted) instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's JSON parser would refuse keys like __proto__ with 400; we parse ourselves.
    bodyLimit: config.maxJsonBytes,
    // Fastify's own answers to a malformed URL (400 bad percent-encoding, 414 a path parameter
    // over maxParamLength) quote the whole path, DSN token included, in the body; ours do not.
    frameworkErrors: (err, request, reply: FastifyReply) => {
      const tooLong = err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      reply.errorCode = 'bad_url' // the refusal reason in metrics (plugins/metrics.ts)
      void reply.code(tooLong ? 414 : 400).send({ error: 'bad_url', message: tooLong ? 'a path segment is too long' : 'the URL is not valid' })
      // No onResponse hook runs for these answers, so they are counted here.
      app.observeAnswer(request, reply)
    },
    // request.ip is what the per-address unknown-token limit counts: behind a proxy, trust exactly
    // its hops, never all of X-Forwarded-For (a client could then pick its own address).
    // (What a hop count means in proxy-addr, spelled as a function: Fastify's types take no number.)
    trustProxy: config.trustProxyHops > 0 ? (_address: string, hop: number) => hop < config.trustProxyHops : false,
    // Slow or stalled clients: the whole request, headers and body, must arrive
    // within REQUEST_TIMEOUT_MS and its headers within HEADERS_TIMEOUT_MS, else Node answers 408
    // and closes the connection. Node checks them every connectionsCheckingInterval, so a
    // connection is cut within that much after its deadline.
    requestTimeout: config.requestTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    http: serverOptions,
    // TLS_CERT_FILE/TLS_KEY_FILE: HTTPS on the same port, with the same limits. A client that has
    // not finished its TLS handshake within HEADERS_TIMEOUT_MS has not sent its headers either.
    ...httpsOption(config.tls, { ...serverOptions, handshakeTimeout: config.headersTimeoutMs }),
    // Refusals Node makes itself (timeouts, malformed heads): counted in metrics like every other
    // refusal, and never written on a connection whose request was already answered (a drain).
    clientErrorHandler: (err: Error & { code?: string }, socket: Socket) => {
      if (drain?.cut(socket, err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : 'closed')) return
      if (err.code === 'ECONNRESET' || socket.destroyed) return
      const [status, reason, message] = clientErrorAnswer(err.code)
      if (app.hasDecorator('observeClientError')) app.observeClientError(socket, status, reason)
      app.log.info({ status, reason }, 'request refused by the HTTP server')
      const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
      if (socket.writable && !answering?.headersSent) {
        const body = JSON.stringify({ error: reason, message })
        socket.write(`HTTP/1.1 ${status} ${reason.replace(/_/g, ' ')}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
      }
      socket.destroy(err)
    },
  })
  app.decorate('gatewayRoutes', [])
  app.addHook('onRoute', (r) => void app.gatewayRoutes.push(...[r.method].flat().map((method) => ({ method, url: r.url, schema: r.schema }))))
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((request, reply) => {
    request.log.info({ url: redactUrl(request.url) }, 'no such route')
    reply.code(404).send({ error: 'not_found', message: 'no such route' })
  })
  app.addHook('onResponse', async (request, reply) => {
    request.log.info({ method: request.method, url: redactUrl(request.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
  })

  await app.register(redisPlugin, { url: config.redisUrl })
  await app.register(queuesPlugin, { redisPrefix: config.redisPrefix })
  // Before the routes, so its onResponse hook sees every one; served by server.ts on METRICS_PORT.
  // The backlog poller is created below; its figures are read lazily, at scrape time.
  const inFlight = createInFlightLimiter(config.maxInFlightPerToken)
  await app.register(metricsPlugin, {
    redisPrefix: config.redisPrefix,
    backlog: () => (app.hasDecorator('backlog') ? app.backlog.snapshot() : null),
    guards: () => ({ inFlight: inFlight.inFlight(), draining: drain?.active() ?? 0 }),
  })
  // An answer sent before the body was read (a refusal, a duplicate photo's 409) must reach the
  // device: the rest of the body is read and discarded, within bounds (drain.ts).
  drain = installBodyDrain(app, {
    maxBytes: config.drainMaxBytes,
    timeoutMs: config.drainTimeoutMs,
    acceptedMaxBytes: config.maxMediaBytes,
    onOutcome: (outcome) => app.observeDrain(outcome),
  })

  const tokens = createTokenCache(app.redis, app.subscriber, { prefix: config.redisPrefix, ttlMs: config.tokenCacheMs })
  app.decorate('tokenCache', tokens)
  const unknownTokens =
    config.unknownTokenMaxPerIp > 0
      ? createUnknownTokenLimiter(app.redis, { keyFor: keys(config.redisPrefix).unknownTokenIp, max: config.unknownTokenMaxPerIp, windowMs: config.unknownTokenWindowMs })
      : undefined
  const authenticate = createAuthenticator(tokens, { defaultRateLimitPerMinute: config.rateLimitPerMinute, unknownTokens })
  // One poller per gateway; requests only read its verdict (no Redis round trip of their own).
  const backlog = createBacklogMonitor(app.redis, {
    prefix: config.redisPrefix,
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
  const idempotency = createIdempotencyStore(app.redis, { pendingTimeoutMs: config.pendingTimeoutMs, ttlMs: config.idempotencyTtlMs })
  // Every script the request path runs is in Redis's cache before the gateway counts as ready
  // (/readyz), on every connection: shared/redis-scripts.ts says what went wrong without it.
  defineStagingCommands(app.redis)
  const scripts = keepScriptsLoaded(app.redis, {
    // BullMQ defines its scripts once its connection is initialised.
    before: () => Promise.all(Object.values(app.queues).map((q) => q.client)),
    onError: (err) => app.log.warn({ err: (err as Error).message }, 'could not load the Redis scripts; retrying'),
  })
  app.decorate('scripts', scripts)
  // Not `prefix`: that option name is Fastify's route prefix.
  const common = {
    redisPrefix: config.redisPrefix,
    idempotency,
    authenticate,
    backlog,
    backpressureRetryAfterS: config.backpressureRetryAfterS,
    inFlight,
    workspaceBytesPerMinute: config.workspaceBytesPerMinute,
  }

  await app.register(healthRoutes)
  await app.register(jsonIngestRoutes, { ...common, maxJsonBytes: config.maxJsonBytes, faultPauseAfterClaimMs: config.faultPauseAfterClaimMs })
  await app.register(mediaRoutes, { ...common, s3: config.s3, maxMediaBytes: config.maxMediaBytes, pendingTimeoutMs: config.pendingTimeoutMs })
  return app
}
