// What every figure needs: the stack (its own directory), clients on it, the environment the
// production processes get, the seeded tokens, and helpers to start each figure from a clean state.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { Client as S3Client } from 'minio'
import type { Db, MongoClient } from 'mongodb'
import { COLLECTIONS, connectMongo } from '../shared/mongo.ts'
import { createS3 } from '../shared/s3.ts'
import { syncTokenMirror } from '../shared/token-registry.ts'
import { startStack, type Stack } from '../stack/launcher.ts'
import { defaultStackDir } from '../stack/paths.ts'
import { inspectorEnv } from '../stack/roles.ts'
import type { BenchOptions } from './options.ts'
import { seedTokens } from './seed.ts'

export const PREFIX = '{rdt}'

export interface Bench {
  opts: BenchOptions
  stack: Stack
  /** Where logs, load specs and profiles go (inside the stack dir). */
  dir: string
  /** Environment of the gateway and worker processes. */
  appEnv: Record<string, string>
  redis: Redis
  mongo: MongoClient
  db: Db
  s3: S3Client
  s3Config: { endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string }
  workspaceId: string
  tokens: string[]
  tokensFile: string
  log(msg: string): void
  /** Empties Redis (queues, keys, rate-limit state), reloads the token mirror and zeroes INFO commandstats. */
  resetRedis(): Promise<void>
  /** Drops the ingest collections (workers recreate their indexes when they start). */
  resetIngestCollections(): Promise<void>
  close(): Promise<void>
}

export async function createBench(opts: BenchOptions, log: (msg: string) => void): Promise<Bench> {
  const stackDir = join(defaultStackDir, `bench-${process.pid}`)
  // Production Redis settings (AOF everysec, noeviction) come from the launcher; a maxmemory, as
  // compose sets one, makes the gateway's Redis-memory backpressure check real too.
  // One Redis server whatever STACK_TOPOLOGY says: the bench reads Redis figures with plain clients.
  const stack = await startStack({ dir: stackDir, redisArgs: ['--maxmemory', '4gb'], singleRedis: true })
  const dir = join(stackDir, 'bench')
  mkdirSync(dir, { recursive: true })
  // The bench's own setup and checks use the stack's TEST-ONLY root credentials; the gateways and
  // workers get their own role's (bench/procs.ts).
  const inspector = inspectorEnv(stack.env)
  const redis = new Redis(inspector.REDIS_URL!, { maxRetriesPerRequest: null })
  // Redis's latency monitor records any event (command, fork, AOF write/fsync) of 5 ms or more;
  // the open-loop figures read it to tell Redis stalls from gateway stalls.
  await redis.config('SET', 'latency-monitor-threshold', '5')
  const { client: mongo, db } = await connectMongo(stack.env.MONGODB_URL!, 'majority')
  const s3Config = {
    endpoint: stack.env.S3_ENDPOINT!,
    accessKey: inspector.S3_ACCESS_KEY!,
    secretKey: inspector.S3_SECRET_KEY!,
    bucket: stack.env.S3_BUCKET!,
    region: stack.env.S3_REGION!,
  }
  const s3 = createS3(s3Config)
  const seeded = await seedTokens(db, redis, PREFIX, opts.tokens)
  const tokensFile = join(dir, 'tokens.json')
  writeFileSync(tokensFile, JSON.stringify(seeded.tokens), { mode: 0o600 })

  const appEnv = benchAppEnv(stack.env)

  return {
    opts,
    stack,
    dir,
    appEnv,
    redis,
    mongo,
    db,
    s3,
    s3Config,
    workspaceId: seeded.workspaceId,
    tokens: seeded.tokens,
    tokensFile,
    log,
    async resetRedis() {
      await redis.flushall()
      await syncTokenMirror(db, redis, PREFIX)
      await redis.config('RESETSTAT')
    },
    async resetIngestCollections() {
      for (const name of [COLLECTIONS.sessions, COLLECTIONS.conflicts, COLLECTIONS.logs, COLLECTIONS.logBatches, COLLECTIONS.media]) {
        await db
          .collection(name)
          .drop()
          .catch(() => {})
      }
    },
    async close() {
      redis.disconnect()
      await mongo.close()
      await stack.stop()
      if (!opts.keep) rmSync(stackDir, { recursive: true, force: true })
    },
  }
}

/**
 * The product processes' environment in every bench stack (this one and bench/distributed.ts):
 * the stack's own settings, plus the few that keep the rounds measuring the path, not a policy.
 */
export function benchAppEnv(stackEnv: Record<string, string>): Record<string, string> {
  return {
    ...stackEnv,
    HOST: '127.0.0.1',
    REDIS_PREFIX: PREFIX,
    // As in production (compose.yaml): info, one line per request.
    LOG_LEVEL: 'info',
    // The T1 rounds queue far more than a real backlog without workers to drain them; the
    // backlog poller still runs (its cost is part of the figure), its verdict never triggers.
    BACKLOG_HIGH_WATER: '10000000',
    // T3 sends 256 photos of 1-5 MB per round through one workspace, more than its default byte
    // budget (256 MiB a minute): the rounds measured 429s, not storage. The budget is a policy
    // limit, tested in test/gateway-ratelimit.test.ts (with 0 the claim script skips it).
    WORKSPACE_BYTES_PER_MINUTE: '0',
    // Worker tuning given on the bench's own command line (WORKER_BATCH_WAIT_MS=30 npm run bench)
    // reaches the workers, so a setting can be measured without editing its default.
    ...Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith('WORKER_') && v !== undefined)),
  }
}
