// Starts the gateway: read config, build, listen. Everything else lives in app.ts.
import pino from 'pino'
import { ConfigError, loadConfig } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { assertNoEviction } from '../shared/redis.ts'
import { buildGateway } from './app.ts'

let config
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message)
    process.exit(1)
  }
  throw err
}
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

await app.listen({ port: config.port, host: config.host })

let closing = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (closing) return
    closing = true
    logger.info({ signal }, 'shutting down')
    // Stop taking requests, let in-flight ones finish, then close queues and Redis (app onClose).
    const force = setTimeout(() => process.exit(1), 15_000).unref()
    app.close().then(
      () => {
        clearTimeout(force)
        process.exit(0)
      },
      () => process.exit(1),
    )
  })
}
