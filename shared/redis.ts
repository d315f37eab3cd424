// Redis connections. Producers and consumers want opposite behaviour when Redis is away:
// the gateway must fail fast (so a device gets 503 and retries), while a worker should
// wait patiently and resume by itself.
import { Redis, type RedisOptions } from 'ioredis'
import { EvictionPolicyError } from './redis-errors.ts'

/** Gateway connection: no offline queue, short timeouts; every error maps to 503. */
export function createProducerRedis(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    connectTimeout: 2000,
    // Keep reconnecting for ever, but never more slowly than once a second.
    retryStrategy: (times) => Math.min(times * 100, 1000),
    ...extra,
  })
}

/**
 * A connection that only ever SUBSCRIBEs (the gateway's token-change channel). ioredis (5.8.2 and
 * later) writes a SUBSCRIBE issued during the connection handshake before its INFO ready check;
 * Redis then refuses the INFO ("only subscriber commands may be used"), ioredis drops the
 * connection as not ready, and because it never reached "ready" it does not resubscribe after
 * reconnecting: a gateway silently stops hearing revocations. So this connection sends nothing
 * but what its owner sends after "ready": no ready check, no CLIENT SETINFO, no automatic
 * resubscribe or resend. The owner subscribes on every "ready" (gateway/token-cache.ts).
 */
export function createSubscriberRedis(url: string): Redis {
  return new Redis(url, {
    enableReadyCheck: false,
    disableClientInfo: true,
    autoResubscribe: false,
    autoResendUnfulfilledCommands: false,
    // The SUBSCRIBE is only sent once connected, so nothing needs to queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: null,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 100, 1000),
  })
}

/** Worker connection: BullMQ requires maxRetriesPerRequest null for blocking commands. */
export function createWorkerRedis(url: string, extra: RedisOptions = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    ...extra,
  })
}

/**
 * Gives a fail-fast client a moment to connect, so a process's first requests are not refused;
 * if Redis is down it returns anyway (the process answers 503 until Redis is back).
 */
export function waitForReady(redis: Redis, ms = 3000): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve()
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms)
    redis.once('ready', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/**
 * Refuses to run against a Redis that may evict keys: an evicted job or idempotency key is an
 * accepted record silently lost. Production sets `noeviction` (compose.yaml).
 */
export async function assertNoEviction(redis: Redis): Promise<void> {
  const res = (await redis.config('GET', 'maxmemory-policy')) as string[]
  const policy = res[1]
  if (policy !== undefined && policy !== 'noeviction') {
    throw new EvictionPolicyError(policy)
  }
}

/**
 * Closes a client at shutdown without ever hanging on it: QUIT (pending replies still arrive)
 * when connected, bounded by `ms`; otherwise, or past the bound, drop the connection. A QUIT
 * issued while Redis is away waits in the offline queue until Redis is back, which kept a
 * worker sent SIGTERM during an outage alive until its backstop exited 1 (found by
 * faults/shutdown.faults.ts).
 */
export async function quitOrDisconnect(redis: Redis, ms = 2000): Promise<void> {
  if (redis.status === 'ready') {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([redis.quit().catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
    clearTimeout(timer)
  }
  redis.disconnect()
}
