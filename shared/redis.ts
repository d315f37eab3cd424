// Redis connections. Producers and consumers want opposite behaviour when Redis is away:
// the gateway must fail fast (so a device gets 503 and retries), while a worker should
// wait patiently and resume by itself.
//
// Every factory takes a target: a REDIS_URL for one server, or the Redis settings, which name a
// cluster when REDIS_CLUSTER_NODES is set. Callers hold a RedisClient and never need to know which.
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisNode, RedisSettings } from './config.ts'
import { EvictionPolicyError } from './redis-errors.ts'
// Every client made here times commands out only when Redis did not answer (see that module).
import './redis-command-timeout.ts'
// Commands without closures over themselves, which keep them alive past their reply (see that module).
import './redis-command-closures.ts'

/** One Redis server or a Redis Cluster: both run the same commands, scripts and BullMQ queues. */
export type RedisClient = Redis | Cluster

export type RedisTarget = string | Pick<RedisSettings, 'redisUrl' | 'redisClusterNodes'>

/**
 * A client for `target` with these per-connection options. On a cluster, REDIS_URL gives the
 * scheme (rediss: = TLS), user and password of every node, and its host is one more seed; the
 * cluster options are the same fail-fast or patient choice as the per-connection ones.
 */
function connect(target: RedisTarget, options: RedisOptions, cluster: ClusterOptions = {}): RedisClient {
  if (typeof target === 'string' || !target.redisClusterNodes)
    return new Redis(typeof target === 'string' ? target : target.redisUrl, options)
  const u = new URL(target.redisUrl)
  const seeds: RedisNode[] = [...target.redisClusterNodes, { host: u.hostname, port: Number(u.port) || 6379 }]
  // These are the cluster client's own choices: a cluster sends each command through a node's
  // connection itself, so on the node connections they would do nothing.
  const { retryStrategy, enableOfflineQueue, enableReadyCheck, lazyConnect, enableAutoPipelining, ...perNode } = options
  return new Cluster(seeds, {
    redisOptions: {
      ...perNode,
      username: decodeURIComponent(u.username) || undefined,
      password: decodeURIComponent(u.password) || undefined,
      ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    },
    clusterRetryStrategy: retryStrategy ? (times) => retryStrategy(times) ?? null : undefined,
    enableOfflineQueue,
    enableReadyCheck,
    lazyConnect,
    enableAutoPipelining,
    // A failover takes the node timeout plus an election; commands retry through it (bounded by
    // maxRedirections), and a fail-fast client's own timeout still answers 503 first.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    ...cluster,
  })
}

/** Gateway connection: no offline queue, short timeouts; every error maps to 503. */
export function createProducerRedis(target: RedisTarget, extra: RedisOptions = {}): RedisClient {
  return connect(target, {
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
export function createSubscriberRedis(target: RedisTarget): RedisClient {
  return connect(target, {
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
export function createWorkerRedis(target: RedisTarget, extra: RedisOptions = {}): RedisClient {
  return connect(target, {
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
export function waitForReady(redis: RedisClient, ms = 3000): Promise<void> {
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
export async function assertNoEviction(redis: RedisClient): Promise<void> {
  for (const node of await masters(redis)) {
    const res = (await node.config('GET', 'maxmemory-policy')) as string[]
    const policy = res[1]
    if (policy !== undefined && policy !== 'noeviction') {
      throw new EvictionPolicyError(policy)
    }
  }
}

/**
 * The servers that hold keys: the client itself, or each master of a cluster (a keyless command
 * sent to a Cluster client reaches one node chosen at random). Waits for the cluster's slot map.
 */
export async function masters(redis: RedisClient): Promise<Redis[]> {
  if (!(redis instanceof Cluster)) return [redis]
  if (redis.status !== 'ready')
    await new Promise<void>((resolve, reject) => {
      redis.once('ready', resolve)
      redis.once('end', () => reject(new Error('Redis Cluster connection ended before it was ready')))
    })
  return redis.nodes('master')
}

/**
 * Closes a client at shutdown without ever hanging on it: QUIT (pending replies still arrive)
 * when connected, bounded by `ms`; otherwise, or past the bound, drop the connection. A QUIT
 * issued while Redis is away waits in the offline queue until Redis is back, which kept a
 * worker sent SIGTERM during an outage alive until its backstop exited 1 (found by
 * faults/shutdown.faults.ts).
 */
export async function quitOrDisconnect(redis: RedisClient, ms = 2000): Promise<void> {
  if (redis.status === 'ready') {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([redis.quit().catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, ms)))])
    clearTimeout(timer)
  }
  redis.disconnect()
}
