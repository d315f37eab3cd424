// buildGateway(deps) returns the Fastify app; server.ts only starts it. The gateway is
// deliberately thin: authenticate the DSN, claim the idempotency key, enqueue, answer.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Config } from '../shared/config.ts'
import { loggerOptions, redactUrl } from '../shared/logger.ts'
import { createAuthenticator } from './auth.ts'
import { errorHandler } from './errors.ts'
import { createIdempotencyStore } from './idempotency.ts'
import redisPlugin from './plugins/redis.ts'
import queuesPlugin from './plugins/queues.ts'
import healthRoutes from './routes/health.ts'
import jsonIngestRoutes from './routes/json-ingest.ts'
import mediaRoutes from './routes/media.ts'
import { createTokenCache } from './token-cache.ts'

export interface GatewayDeps {
  config: Config
  /** A logger to use instead of a new pino instance (tests capture output this way). */
  logger?: FastifyBaseLogger | false
}

export async function buildGateway({ config, logger }: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger || undefined,
    logger: logger === undefined ? loggerOptions(config.logLevel, 'gateway') : undefined,
    // The real client appends '/' to every path; accept both forms.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    // One line per request from our onResponse hook (with the DSN redacted) instead of two.
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify's JSON parser would refuse keys like __proto__ with 400; we parse ourselves.
    bodyLimit: config.maxJsonBytes,
  })
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

  const tokens = createTokenCache(app.redis, app.subscriber, { prefix: config.redisPrefix, ttlMs: config.tokenCacheMs })
  const authenticate = createAuthenticator(tokens)
  const idempotency = createIdempotencyStore(app.redis, { pendingTimeoutMs: config.pendingTimeoutMs, ttlMs: config.idempotencyTtlMs })
  // Not `prefix`: that option name is Fastify's route prefix.
  const common = { redisPrefix: config.redisPrefix, idempotency, authenticate }

  await app.register(healthRoutes)
  await app.register(jsonIngestRoutes, { ...common, maxJsonBytes: config.maxJsonBytes })
  await app.register(mediaRoutes, { ...common, s3: config.s3, maxMediaBytes: config.maxMediaBytes, pendingTimeoutMs: config.pendingTimeoutMs })
  return app
}
