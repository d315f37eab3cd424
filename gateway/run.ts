// The gateway process: read config, build, listen, serve metrics, close on signals. server.ts
// calls it as it is; the fault suite calls it with test hooks (faults/lib/gateway-with-hooks.ts),
// so the process it kills is this same code.
import pino from 'pino'
import { collectDefaultMetrics } from 'prom-client'
import { startMetricsServer } from '../shared/metrics-server.ts'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit, exitOnEvictingRedis } from '../shared/process.ts'
import { buildGateway, type GatewayHooks } from './app.ts'
import { loadGatewayConfig } from './config.ts'

/**
 * A phone on a poor network can take minutes over one photo: at shutdown, in-flight requests get
 * this long, then their connections are cut. The device sees a dropped connection and retries (an
 * unfinished upload was never answered 201; its claim is released or goes stale), and the process
 * exits 0 before closeOnSignals' 15 s backstop would exit 1.
 */
const SHUTDOWN_GRACE_MS = 10_000

export async function runGateway(hooks?: GatewayHooks): Promise<void> {
  const config = configOrExit(() => loadGatewayConfig())
  const logger = pino(loggerOptions(config.logLevel, 'gateway'))
  const app = await buildGateway({ config, logger, hooks })

  // Refuse to run against an evicting Redis: evicted jobs or keys are accepted data lost.
  // Redis may be down at start (we then answer 503 until it is back), so it is checked on every connect.
  await exitOnEvictingRedis(app.redis, logger)

  await app.listen({ port: config.port, host: config.host })

  // Prometheus on its own listener, never on the public port (whose URLs carry DSN tokens).
  // Process figures (RSS, event loop, GC) belong to the process, so they are added here.
  collectDefaultMetrics({ register: app.metrics })
  const metrics = await startMetricsServer({ port: config.metricsPort ?? 9464, host: config.host, registry: app.metrics, logger })

  // Stop taking requests, let in-flight ones finish, then close queues and Redis (app onClose).
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
}
