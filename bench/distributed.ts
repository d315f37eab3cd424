// A second stack for the scaling rows that need the distributed topology (`--only shards,dist-media`):
// a Redis Cluster of 3 masters with a replica each, distributed MinIO (4 nodes behind a balancer)
// and FerretDB, as `STACK_TOPOLOGY=distributed npm start` runs them (stack/launcher.ts). The main
// bench stack stays a single Redis: its figures read Redis with plain clients (INFO, SCAN,
// MEMORY USAGE on one server). This one is started only for those rows and stopped right after,
// so the two never load the 2 cores at once.
//
// Its workspaces are seeded in two sets over the same cluster, so the 1-shard and 3-shard rounds
// differ only in how the work is spread: set "1" has 3 workspaces all on shard 0 (one master,
// gateways with REDIS_SHARDS=1), set "3" one workspace on each of shards 0, 1 and 2 (one per
// master, REDIS_SHARDS=3), as `workspace create` places them (tokens/shards.ts).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Db, MongoClient } from 'mongodb'
import { connectMongo } from '../shared/mongo.ts'
import { createWorkerRedis, masters, type RedisClient } from '../shared/redis.ts'
import { syncTokenMirror } from '../shared/token-registry.ts'
import { startStack, type Stack } from '../stack/launcher.ts'
import { defaultStackDir } from '../stack/paths.ts'
import { inspectorEnv } from '../stack/roles.ts'
import { loadTestConfig } from '../testing/config.ts'
import { benchAppEnv, PREFIX } from './context.ts'
import type { BenchOptions } from './options.ts'
import { cpuOf } from './procs.ts'
import { seedTokens } from './seed.ts'

export const SHARDS = 3

export interface DistBench {
  opts: BenchOptions
  stack: Stack
  dir: string
  appEnv: Record<string, string>
  /** A Cluster client with the stack's TEST-ONLY root credentials. */
  redis: RedisClient
  mongo: MongoClient
  db: Db
  s3Config: { endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string }
  /** Tokens files of the two workspace sets: by shard count (1 or SHARDS). */
  tokensFiles: Record<number, string>
  /** The workspaces of each set, and the shard each is on. */
  workspaces: Record<number, { id: string; shard: number }[]>
  /** The tokens file the media rounds use (the SHARDS set). */
  tokensFile: string
  log(msg: string): void
  /** FLUSHALL on every master (replicas follow), then the token mirror again. */
  resetRedis(): Promise<void>
  /** CPU seconds (user + system, /proc) of every Redis node, replicas included: replication is part of the cost. */
  redisCpu(): number
  /** Keys on each master, in master order: whether the work was spread. */
  keysPerMaster(): Promise<number[]>
  close(): Promise<void>
}

export async function createDistributedBench(opts: BenchOptions, log: (msg: string) => void): Promise<DistBench> {
  const stackDir = join(defaultStackDir, `bench-dist-${process.pid}`)
  // Per node: 6 nodes, and each round's jobs stay queued (no worker in the T1-style rounds).
  const stack = await startStack({ dir: stackDir, redisArgs: ['--maxmemory', '1gb'], topology: 'distributed', redisClusterPrefix: PREFIX })
  try {
    const dir = join(stackDir, 'bench')
    mkdirSync(dir, { recursive: true })
    const inspector = inspectorEnv({ ...stack.env, REDIS_PREFIX: PREFIX })
    const config = loadTestConfig(inspector)
    const redis = createWorkerRedis(config)
    const { client: mongo, db } = await connectMongo(stack.env.MONGODB_URL!, 'majority')
    const s3Config = {
      endpoint: stack.env.S3_ENDPOINT!,
      accessKey: inspector.S3_ACCESS_KEY!,
      secretKey: inspector.S3_SECRET_KEY!,
      bucket: stack.env.S3_BUCKET!,
      region: stack.env.S3_REGION!,
    }
    const tokensFiles: Record<number, string> = {}
    const workspaces: Record<number, { id: string; shard: number }[]> = {}
    for (const [set, shards] of [
      [1, [0, 0, 0]],
      [SHARDS, [0, 1, 2]],
    ] as const) {
      const tokens: string[] = []
      workspaces[set] = []
      for (const shard of shards) {
        const seeded = await seedTokens(db, redis, PREFIX, Math.ceil(opts.tokens / shards.length), { shard })
        tokens.push(...seeded.tokens)
        workspaces[set].push({ id: seeded.workspaceId, shard })
      }
      tokensFiles[set] = join(dir, `tokens-${set}-shard.json`)
      writeFileSync(tokensFiles[set], JSON.stringify(tokens), { mode: 0o600 })
    }
    const appEnv = benchAppEnv(stack.env)
    return {
      opts,
      stack,
      dir,
      appEnv,
      redis,
      mongo,
      db,
      s3Config,
      tokensFiles,
      workspaces,
      tokensFile: tokensFiles[SHARDS]!,
      log,
      async resetRedis() {
        for (const m of await masters(redis)) await m.flushall()
        await syncTokenMirror(db, redis, PREFIX)
      },
      redisCpu: () => stack.redisNodes.reduce((a, n) => a + (n.pid ? cpuOf(n.pid) : 0), 0),
      async keysPerMaster() {
        return Promise.all((await masters(redis)).map(async (m) => Number(await m.dbsize())))
      },
      async close() {
        redis.disconnect()
        await mongo.close()
        await stack.stop()
        if (!opts.keep) rmSync(stackDir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await stack.stop()
    throw err
  }
}
