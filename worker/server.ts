// The worker process: read config, build the worker, close it on SIGTERM/SIGINT.
import { pino } from 'pino'
import { ConfigError, loadConfig, type Config } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { buildWorker, WorkerConfigError } from './app.ts'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(err.message)
  process.exit(1)
}

const logger = pino(loggerOptions(config.logLevel, 'worker'))
let app: Awaited<ReturnType<typeof buildWorker>>
try {
  app = await buildWorker({ config, logger })
} catch (err) {
  if (err instanceof WorkerConfigError) {
    console.error(`invalid configuration: ${err.message}`)
    process.exit(1)
  }
  logger.fatal({ err: (err as Error).message }, 'worker failed to start')
  process.exit(1)
}

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    app.close().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'error during shutdown')
        process.exit(1)
      },
    )
  })
}
