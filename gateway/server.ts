// Starts the gateway: read config, build, listen. Everything else lives in app.ts.
import pino from 'pino'
import { loadConfig } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit } from '../shared/process.ts'
import { assertNoEviction } from '../shared/redis.ts'
import { buildGateway } from './app.ts'

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

// Stop taking requests, let in-flight ones finish, then close queues and Redis (app onClose).
closeOnSignals(() => app.close(), logger)
