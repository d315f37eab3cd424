// The worker process: read config, build the worker, close it on SIGTERM/SIGINT.
import { pino } from 'pino'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit } from '../shared/process.ts'
import { buildWorker } from './app.ts'
import { loadWorkerConfig } from './config.ts'
import { collectDefaultMetrics } from 'prom-client'
import { startMetricsServer } from '../shared/metrics-server.ts'
import { createWorkerMetrics } from './metrics.ts'
import { shardPrefixes } from '../shared/redis-shards.ts'

const config = configOrExit(() => loadWorkerConfig())
const logger = pino(loggerOptions(config.logLevel, 'worker'))
const metrics = createWorkerMetrics()
collectDefaultMetrics({ register: metrics.registry })
let app: Awaited<ReturnType<typeof buildWorker>>
try {
  app = await buildWorker({ config, logger, metrics })
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'worker failed to start')
  process.exit(1)
}
const depth = metrics.watchQueues(app.redis, shardPrefixes(config.redisPrefix, config.redisShards), [...app.workers.keys()])
// /metrics and /healthz on their own port (compose health-checks the worker there). Healthy
// means every queue's BullMQ loop is still running: a loop that died never recovers by itself.
const workers = [...[...app.workers.values()].flat(), ...(app.maintenance ? [app.maintenance.worker] : [])]
const server = await startMetricsServer({
  port: config.metricsPort ?? 9465,
  host: config.host,
  registry: metrics.registry,
  healthy: () => workers.every((w) => w.isRunning()),
  logger,
})
// buildWorker's close() is itself bounded (workers first, then clients); this is the backstop.
closeOnSignals(
  async () => {
    await server?.close()
    await depth.close()
    await app.close()
  },
  logger,
  30_000,
)
