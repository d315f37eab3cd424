// Starts the gateway: read config, build, listen. Everything else lives in app.ts.
import pino from 'pino'
import { loadConfig } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit } from '../shared/process.ts'
import { assertNoEviction } from '../shared/redis.ts'
import { buildGateway } from './app.ts'
import { collectDefaultMetrics } from 'prom-client'
import { startMetricsServer } from '../shared/metrics-server.ts'

const config = configOrExit(() => loadConfig())
const logger = pino(loggerOptions(config.logLevel, 'gateway'))
const app = await buildGateway({ config, logger })

// Refuse to run against an evicting Redis: evicted jobs or keys are accepted data lost.
// Redis may be down at start (we then answer 503 until it is back), so check on every connect.
const checkEviction = () =>
  assertNoEviction(app.redis).catch((err: Error) => {
    if (/maxmemory-policy/.test(err.message)) {
      logger.fatal(err.message)
      process.exit(1)
    }
  })
app.redis.on('ready', checkEviction)
if (app.redis.status === 'ready') await checkEviction()

await app.listen({ port: config.port, host: config.host })

// Prometheus on its own listener, never on the public port (whose URLs carry DSN tokens).
// Process figures (RSS, event loop, GC) belong to the process, so they are added here.
collectDefaultMetrics({ register: app.metrics })
const metrics = await startMetricsServer({ port: config.metricsPort ?? 9464, host: config.host, registry: app.metrics, logger })

// Stop taking requests, let in-flight ones finish, then close queues and Redis (app onClose).
// A phone on a poor network can take minutes over one photo: in-flight requests get
// SHUTDOWN_GRACE_MS, then their connections are cut. The device sees a dropped connection and
// retries (an unfinished upload was never answered 201; its claim is released or goes stale),
// and the process exits 0 before closeOnSignals' 15 s backstop would exit 1.
const SHUTDOWN_GRACE_MS = 10_000
closeOnSignals(async () => {
  const cut = setTimeout(() => {
    logger.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still in flight after the grace period; closing their connections')
    app.server.closeAllConnections()
  }, SHUTDOWN_GRACE_MS)
  try {
    await app.close()
  } finally {
    clearTimeout(cut)
  }
  await metrics?.close()
}, logger)
