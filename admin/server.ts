// Starts the admin panel: read config, build, listen on ADMIN_PORT. Everything else is in app.ts.
import pino from 'pino'
import { ConfigError, loadConfig } from '../shared/config.ts'
import { loggerOptions } from '../shared/logger.ts'
import { buildAdmin } from './app.ts'
import { loadAdminConfig } from './config.ts'

let config
let adminConfig
try {
  config = loadConfig()
  adminConfig = loadAdminConfig(config)
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message)
    process.exit(1)
  }
  throw err
}
const logger = pino(loggerOptions(config.logLevel, 'admin'))
const app = await buildAdmin({ config, adminConfig, logger })
await app.listen({ port: config.adminPort, host: config.host })
logger.info({ url: adminConfig.adminUrl, secureCookie: adminConfig.cookieSecure }, 'admin panel listening')

let closing = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (closing) return
    closing = true
    logger.info({ signal }, 'shutting down')
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
