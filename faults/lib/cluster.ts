// One scenario's world: its own local stack (Redis, FerretDB, S3 gateway under its own dir), so
// killing or restarting a service cannot disturb any other test; the product processes spawned
// against it; a seeded workspace and DSN; and the test's own clients for checking what is stored.
import { randomBytes } from 'node:crypto'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Queue } from 'bullmq'
import type { Client as S3Client } from 'minio'
import type { Db, MongoClient } from 'mongodb'
import { loadTestConfig, type TestConfig } from '../../testing/config.ts'
import { connectMongo } from '../../shared/mongo.ts'
import { QUEUE_NAMES, type QueueName } from '../../shared/queue-settings.ts'
import { createS3 } from '../../shared/s3.ts'
import { createWorkerRedis, type RedisClient } from '../../shared/redis.ts'
import { shardPrefixes } from '../../shared/redis-shards.ts'
import { startStack, type Stack, type Topology } from '../../stack/launcher.ts'
import { inspectorEnv, roleEnv } from '../../stack/roles.ts'
import { defaultStackDir } from '../../stack/paths.ts'
import { freePort } from '../../stack/ports.ts'
import { seedToken, type SeededToken } from '../../testing/seed.ts'
import { waitFor } from '../../testing/wait.ts'
import { spawnProc, type Proc } from './processes.ts'

interface Teardown {
  teardown(fn: () => unknown): void
  passing(): boolean
}

export interface ClusterOptions {
  /** Extra redis-server flags, e.g. ['--appendfsync', 'always']. */
  redisArgs?: string[]
  /** Environment for every worker process of this scenario (e.g. a short lock). */
  workerEnv?: Record<string, string>
  gatewayEnv?: Record<string, string>
  /**
   * `distributed`: a 3-master Redis Cluster with 3 shards (stack/redis-cluster.ts) and MinIO as 4
   * nodes behind a balancer (stack/minio-distributed.ts); default single.
   */
  topology?: Topology
  /** The seeded workspace's Redis shard; default 0. */
  shard?: number
}

export interface Cluster {
  name: string
  dir: string
  stack: Stack
  config: TestConfig
  /** The environment product processes get: the stack's services, a private prefix and database. */
  env: Record<string, string>
  seeded: SeededToken
  dsn: string
  gatewayUrl: string
  adminUrl: string
  /** Test-side clients. The Redis client waits through outages (commands queue until it is back); a Cluster client on a cluster. */
  redis: RedisClient
  db: Db
  s3: S3Client
  procs: Proc[]
  /** A gateway on the scenario's port, or on `env.PORT` (a second gateway). */
  gateway(env?: Record<string, string>): Promise<Proc>
  worker(env?: Record<string, string>): Promise<Proc>
  admin(env?: Record<string, string>): Promise<Proc>
  /** Spawns without waiting for readiness (e.g. while Redis is down). */
  spawn(role: Proc['role'], env?: Record<string, string>): Proc
  /** waiting + active + delayed + prioritized jobs, and failed jobs, over every queue. */
  queueCounts(): Promise<{
    pending: number
    active: number
    failed: number
    completed: number
    byQueue: Record<QueueName, Record<string, number>>
  }>
}

export async function startCluster(t: Teardown, name: string, opts: ClusterOptions = {}): Promise<Cluster> {
  const dir = join(defaultStackDir, 'faults', `${name}-${process.pid}-${randomBytes(3).toString('hex')}`)
  await mkdir(dir, { recursive: true })
  const id = randomBytes(4).toString('hex')
  // On a cluster, the scenario's own shards get a master each.
  const stack = await startStack({ dir, redisArgs: opts.redisArgs, topology: opts.topology ?? 'single', redisClusterPrefix: `{f${id}}` })
  const port = await freePort()
  const adminPort = await freePort()
  const mongoUrl = new URL(stack.env.MONGODB_URL!)
  mongoUrl.pathname = `/f_${id}`
  const env: Record<string, string> = {
    ...stack.env,
    MONGODB_URL: mongoUrl.toString(),
    REDIS_PREFIX: `{f${id}}`,
    PORT: String(port),
    ADMIN_PORT: String(adminPort),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    // FerretDB is a single node: "majority" is what production uses and it works here too.
    MONGODB_WRITE_CONCERN: 'majority',
    LOG_LEVEL: 'info',
    // Orphaned staged photos are finished within seconds instead of minutes, so a drain
    // finishes what a gateway crash left behind within the scenario.
    SWEEP_INTERVAL_MS: '2000',
    STAGING_GRACE_MS: '5000',
    // Several gateways and workers run at once here; their metrics listeners would fight over
    // the default ports, and metrics are not what these scenarios check.
    METRICS_PORT: '0',
    // The load is many simulated devices sharing one DSN; the per-token limit (429) is tested
    // elsewhere and would only add retries here.
    RATE_LIMIT_PER_MINUTE: '0',
  }
  // The scenario's own checks and setup use the stack's TEST-ONLY root credentials; every product
  // process gets its own role's (childEnv below), as in production.
  const config = loadTestConfig(inspectorEnv(env))
  const seeded = await seedToken(config, { shard: opts.shard })
  const redis = createWorkerRedis(config, { retryStrategy: () => 200 })
  redis.on('error', () => {}) // outages are the point here
  const { client: mongo, db } = await connectMongo(config.mongodbUrl, 1)
  const s3 = createS3(config.s3)
  // Every shard's: a workspace moved between shards leaves jobs in both.
  const queues = shardPrefixes(config.redisPrefix, config.redisShards).flatMap((prefix) =>
    QUEUE_NAMES.map((q) => new Queue(q, { connection: redis, prefix })),
  )
  for (const q of queues) q.on('error', () => {})
  const procs: Proc[] = []

  const childEnv = (role: Proc['role'], extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    // The parent's environment minus anything that could point a child at another stack.
    const base: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env))
      if (
        !/^(REDIS_|MONGODB_|S3_|WORKER_|PORT$|ADMIN_|PUBLIC_URL$|LOG_LEVEL$|RDT_|METRICS_|RATE_LIMIT|BACKLOG_|BACKPRESSURE_|STAGED_MEDIA|UNKNOWN_TOKEN)/.test(
          k,
        )
      )
        base[k] = v
    const extraFor = role === 'worker' ? opts.workerEnv : role === 'gateway' ? opts.gatewayEnv : undefined
    // The gateway logs a line per request at info; warn keeps its log readable under load.
    return roleEnv({ ...base, ...env, ...(role === 'gateway' ? { LOG_LEVEL: 'warn' } : {}), ...extraFor, ...extra }, role)
  }
  const spawn = (role: Proc['role'], extra?: Record<string, string>) => {
    const p = spawnProc(role, childEnv(role, extra), dir)
    procs.push(p)
    return p
  }
  const gatewayUrl = `http://127.0.0.1:${port}`
  const adminUrl = `http://127.0.0.1:${adminPort}`
  const healthy = async (url: string, p: Proc) => {
    await waitFor(
      async () => {
        if (!p.alive()) throw new Error(`${p.name} exited:\n${p.output().slice(-2000)}`)
        return (await fetch(`${url}/healthz`)).ok
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `${p.name} healthy` },
    )
  }

  const cluster: Cluster = {
    name,
    dir,
    stack,
    config,
    env,
    seeded,
    dsn: `${gatewayUrl}/ingest/${seeded.token}`,
    gatewayUrl,
    adminUrl,
    redis,
    db,
    s3,
    procs,
    spawn,
    async gateway(extra) {
      const p = spawn('gateway', extra)
      await healthy(extra?.PORT ? `http://127.0.0.1:${extra.PORT}` : gatewayUrl, p)
      return p
    },
    async worker(extra) {
      const p = spawn('worker', extra)
      await p.waitForLine(/"msg":"worker started"/, 60_000)
      return p
    },
    async admin(extra) {
      const p = spawn('admin', extra)
      await healthy(adminUrl, p)
      return p
    },
    async queueCounts() {
      const byQueue = {} as Record<QueueName, Record<string, number>>
      let pending = 0
      let active = 0
      let failed = 0
      let completed = 0
      for (const q of queues) {
        const c = await q.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed', 'completed')
        const sum = (byQueue[q.name as QueueName] ??= {})
        for (const [state, n] of Object.entries(c)) sum[state] = (sum[state] ?? 0) + n
        pending += (c.waiting ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0)
        active += c.active ?? 0
        failed += c.failed ?? 0
        completed += c.completed ?? 0
      }
      return { pending, active, failed, completed, byQueue }
    },
  }

  t.teardown(async () => {
    await Promise.all(procs.map((p) => p.kill()))
    await Promise.allSettled(queues.map((q) => q.close()))
    redis.disconnect()
    await (mongo as MongoClient).close().catch(() => {})
    await stack.stop()
    // Keep the logs of a failed scenario; they are what explains it.
    if (t.passing()) await rm(dir, { recursive: true, force: true })
    else console.error(`fault scenario ${name}: logs kept in ${dir}`)
  })
  return cluster
}
