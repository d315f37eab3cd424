// Starts the admin panel: read config, build, listen on ADMIN_PORT. Everything else is in app.ts.
import pino from 'pino'
import { loggerOptions } from '../shared/logger.ts'
import { closeOnSignals, configOrExit, exitOnEvictingRedis } from '../shared/process.ts'
import { buildAdmin } from './app.ts'
import { loadAdminConfig, loadAdminServerConfig } from './config.ts'

const { config, adminConfig } = configOrExit(() => {
  const config = loadAdminServerConfig()
  return { config, adminConfig: loadAdminConfig(config) }
})
const logger = pino(loggerOptions(config.logLevel, 'admin'))
const app = await buildAdmin({ config, adminConfig, logger })
// Like the gateway and the workers: never run against an evicting Redis (the token mirror lives there).
await exitOnEvictingRedis(app.redis, logger)
await app.listen({ port: config.adminPort, host: config.host })
logger.info({ url: adminConfig.adminUrl, secureCookie: adminConfig.cookieSecure }, 'admin panel listening')
closeOnSignals(() => app.close(), logger)
