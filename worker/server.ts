// The worker process: read config, build the worker, close it on SIGTERM/SIGINT.
import { pino } from 'pino'
import { loadConfig } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit } from '../shared/process.ts'
import { buildWorker, WorkerConfigError } from './app.ts'

const config = configOrExit(() => loadConfig())
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
// buildWorker's close() is itself bounded (workers first, then clients); this is the backstop.
closeOnSignals(() => app.close(), logger, 30_000)
