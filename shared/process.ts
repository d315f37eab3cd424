// What every long-running process (gateway, worker, admin) does around its app: stop with a
// clear message on bad configuration, and shut down cleanly, once, on SIGTERM/SIGINT.
import type { RedisClient } from './redis.ts'
import type { Logger } from 'pino'
import { ConfigError } from './config-vars.ts'
import { assertNoEviction } from './redis.ts'
import { EvictionPolicyError } from './redis-errors.ts'

/** Runs the config loader; a ConfigError prints its message (which names the variable) and exits 1. */
export function configOrExit<T>(load: () => T): T {
  try {
    return load()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    console.error(err.message)
    process.exit(1)
  }
}

/**
 * On the first SIGTERM/SIGINT, runs `close` and exits 0 (1 if it fails). A second signal is
 * ignored: a double Ctrl-C must not cut the drain short. `close` is bounded by `forceMs`.
 */
export function closeOnSignals(close: () => Promise<unknown>, logger: Logger, forceMs = 15_000): void {
  let closing = false
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (closing) return
      closing = true
      logger.info({ signal }, 'shutting down')
      const force = setTimeout(() => {
        logger.error({ forceMs }, 'shutdown took too long; exiting')
        process.exit(1)
      }, forceMs).unref()
      close().then(
        () => {
          clearTimeout(force)
          process.exit(0)
        },
        (err: Error) => {
          logger.error({ err: err.message }, 'error during shutdown')
          process.exit(1)
        },
      )
    })
  }
}

/**
 * For a long-running process whose Redis may be down at start: checks the eviction policy now (if
 * connected) and on every (re)connect, and exits 1 if Redis may evict keys (an evicted job,
 * idempotency key or token mirror entry is accepted data silently lost). Other errors (Redis gone
 * again) are left to the connection's own handling.
 */
export async function exitOnEvictingRedis(redis: RedisClient, logger: Logger): Promise<void> {
  const check = () =>
    assertNoEviction(redis).catch((err: unknown) => {
      if (!(err instanceof EvictionPolicyError)) return
      logger.fatal({ code: err.code, policy: err.policy }, err.message)
      process.exit(1)
    })
  redis.on('ready', check)
  if (redis.status === 'ready') await check()
}
