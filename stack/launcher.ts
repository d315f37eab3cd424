import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Client as MinioClient } from 'minio'
import { ensureBinaries, s3ServerFromEnv, type Binaries, type S3Server } from './install.ts'
import { startMinioDistributed, type DistributedS3 } from './minio-distributed.ts'
import { runMinioInit } from './minio-init.ts'
import { defaultStackDir } from './paths.ts'
import { writeAclFile } from './redis-acl.ts'
import { loadOrCreateRoleSecrets, roleVars } from './roles.ts'
import { startFerretDB, startMinio, startRedis, startVersityGW, type RedisOptions, type S3Options, type ServiceHandle } from './services.ts'
import { startRedisCluster, type RedisClusterHandle } from './redis-cluster.ts'
import { claimStackDir, loadOrCreateCredentials, readEnvFile, writeEnvFile } from './stack-dir.ts'

export type { ServiceHandle } from './services.ts'

export interface StackOptions {
  /** Stack dir holding data, logs and the env file; default `<repo>/.stack`. */
  dir?: string
  /** Extra redis-server flags, e.g. ['--appendfsync', 'always', '--maxmemory', '64mb']. */
  redisArgs?: string[]
  /** Per-service readiness deadline; default 60 s. */
  readyTimeoutMs?: number
  /** Binary paths; default: ensureBinaries(). */
  binaries?: Binaries
  /** The S3 server; default STACK_S3 from the environment, else MinIO. */
  s3Server?: S3Server
  /**
   * `distributed`: a Redis Cluster of 3 masters with a replica each, and 3 shards
   * (stack/redis-cluster.ts), and MinIO as a cluster runs it (stack/minio-distributed.ts: 4 nodes
   * behind a balancer); default STACK_TOPOLOGY from the environment, else `single`. MongoDB stays
   * a single server.
   */
  topology?: Topology
  /**
   * The Redis key prefix the ACL users are limited to; default `{*}`, any hash-tagged prefix,
   * so that every test file can use its own (stack/redis-acl.ts says more).
   */
  redisKeyPrefix?: string
  /**
   * `single`: one Redis server even in the distributed topology. The test suite and the bench
   * read and write Redis keys directly, through clients that do not follow cluster redirections.
   */
  singleRedis?: boolean
  /** The REDIS_PREFIX whose shards the distributed topology places one per master; default {rdt}. */
  redisClusterPrefix?: string
}

export interface Stack {
  dir: string
  /**
   * STACK_S3, REDIS_URL (no user: Redis answers NOAUTH), MONGODB_URL, S3_ENDPOINT, S3_REGION,
   * S3_BUCKET, every role's secrets and the test-only TEST_INSPECTOR_* root credentials
   * (stack/roles.ts; roleEnv() gives a process its own).
   */
  env: Record<string, string>
  s3Server: S3Server
  /** `<dir>/env`, the same variables as NAME=value lines. */
  envFile: string
  redis: ServiceHandle
  mongo: ServiceHandle
  s3: ServiceHandle
  topology: Topology
  /** Distributed MinIO's server processes (empty otherwise), for fault tests that kill one. */
  s3Nodes: ServiceHandle[]
  /** The Redis Cluster's nodes, masters first as formed (empty otherwise), for fault tests. */
  redisNodes: ServiceHandle[]
  /** Stops all three services; safe to call twice. */
  stop(): Promise<void>
}

export type Topology = 'single' | 'distributed'

export function topologyFromEnv(env: NodeJS.ProcessEnv = process.env): Topology {
  const v = env.STACK_TOPOLOGY || 'single'
  if (v !== 'single' && v !== 'distributed') throw new Error(`STACK_TOPOLOGY must be "single" or "distributed", got "${v}"`)
  return v
}

export const S3_REGION = 'us-east-1'
export const S3_BUCKET = 'rdt-media'

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const dir = resolve(opts.dir ?? defaultStackDir)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const s3Server = opts.s3Server ?? s3ServerFromEnv()
  const topology = opts.topology ?? topologyFromEnv()
  if (topology === 'distributed' && s3Server !== 'minio') throw new Error('STACK_TOPOLOGY=distributed runs MinIO: leave STACK_S3 unset')
  const bins = opts.binaries ?? (await ensureBinaries(s3Server))
  const claim = await claimStackDir(dir)
  const envFile = join(dir, 'env')
  try {
    const creds = await loadOrCreateCredentials(dir)
    const roles = await loadOrCreateRoleSecrets(dir)
    const aclFile = await writeAclFile(dir, opts.redisKeyPrefix ?? '{*}', roles.redis)
    // Reuse last run's ports when they are free, so that a shell that
    // sourced .stack/env keeps working after a restart.
    const prev = await readEnvFile(envFile)
    const common = (name: string, url: string | undefined) => ({
      dataDir: join(dir, name),
      logFile: join(dir, `${name}.log`),
      port: portOf(url),
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      onSpawn: (pid: number, which = name) => claim.setServicePid(which, pid),
    })

    // Separate data dirs: Versity's posix backend would take MinIO's drive folders for buckets.
    // Separate data dirs per layout too: MinIO refuses drives formatted for another erasure layout.
    const s3Dir = s3Server === 'versity' ? 's3' : topology === 'distributed' ? 'minio-distributed' : 'minio'
    const s3Opts = { ...common(s3Dir, prev.S3_ENDPOINT), ...creds, region: S3_REGION }
    const results = await Promise.allSettled([
      startRedisTopology(opts.singleRedis ? 'single' : topology, opts.redisClusterPrefix ?? '{rdt}', bins.redisServer, {
        ...common(topology === 'distributed' ? 'redis-cluster' : 'redis', prev.REDIS_URL),
        extraArgs: opts.redisArgs,
        aclFile,
        probeUser: { username: 'inspector', password: roles.redis.inspector },
      }),
      startFerretDB(bins.ferretdb, common('ferretdb', prev.MONGODB_URL)),
      startS3(s3Server, topology, bins, s3Opts),
    ])
    const [redis, mongo, s3] = results.map((r) => (r.status === 'fulfilled' ? r.value : undefined))
    if (!redis || !mongo || !s3) {
      await Promise.all([redis?.stop(), mongo?.stop(), s3?.stop()])
      const reasons = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []))
      throw new Error(`local stack failed to start in ${dir}:\n- ${reasons.join('\n- ')}`)
    }

    const env: Record<string, string> = {
      STACK_S3: s3Server,
      STACK_TOPOLOGY: topology,
      REDIS_URL: redis.url,
      ...('clusterNodes' in redis ? { REDIS_CLUSTER_NODES: (redis as RedisClusterHandle).clusterNodes, REDIS_SHARDS: '3' } : {}),
      MONGODB_URL: `${mongo.url}/rdt`,
      S3_ENDPOINT: s3.url,
      S3_REGION,
      S3_BUCKET,
      ...roleVars(redis.url, roles, creds, s3Server === 'minio'),
    }
    try {
      if (s3Server === 'minio') {
        // Bucket, policies and users: compose.yaml's own minio-init job.
        await runMinioInit({ dir, mc: need(bins.mc, 'mc'), endpoint: s3.url, bucket: S3_BUCKET, root: creds, users: roles.s3 })
      } else {
        await ensureBucket(s3.port, creds.accessKey, creds.secretKey)
      }
      await writeEnvFile(envFile, env)
    } catch (err) {
      await Promise.all([redis.stop(), mongo.stop(), s3.stop()])
      throw err
    }

    let stopping: Promise<void> | undefined
    const stop = () =>
      (stopping ??= (async () => {
        await Promise.all([redis.stop(), mongo.stop(), s3.stop()])
        await claim.release()
      })())
    return {
      dir,
      env,
      envFile,
      s3Server,
      topology,
      redis,
      mongo,
      s3,
      s3Nodes: 'nodes' in s3 ? (s3 as DistributedS3).nodes : [],
      redisNodes: 'nodes' in redis ? (redis as RedisClusterHandle).nodes : [],
      stop,
    }
  } catch (err) {
    await claim.release()
    throw err
  }
}

/** One Redis, or (distributed) the cluster, each of whose masters holds one of `prefix`'s shards. */
function startRedisTopology(
  topology: Topology,
  prefix: string,
  bin: string,
  opts: RedisOptions & { probeUser: { username: string; password: string } },
) {
  if (topology !== 'distributed') return startRedis(bin, opts)
  return startRedisCluster(bin, { ...opts, adminUser: opts.probeUser, prefix })
}

function startS3(server: S3Server, topology: Topology, bins: Binaries, opts: S3Options): Promise<ServiceHandle | DistributedS3> {
  if (server === 'versity') return startVersityGW(need(bins.versitygw, 'versitygw'), opts)
  if (topology === 'distributed') return startMinioDistributed(need(bins.minio, 'minio'), opts)
  return startMinio(need(bins.minio, 'minio'), opts)
}

/** Private bucket (no policy): objects are only reachable signed or presigned. */
async function ensureBucket(port: number, accessKey: string, secretKey: string): Promise<void> {
  const client = new MinioClient({ endPoint: '127.0.0.1', port, useSSL: false, accessKey, secretKey, region: S3_REGION, pathStyle: true })
  if (!(await client.bucketExists(S3_BUCKET))) await client.makeBucket(S3_BUCKET, S3_REGION)
}

function need(bin: string | undefined, name: string): string {
  if (!bin) throw new Error(`no ${name} binary: ensureBinaries() was called for another S3 server than STACK_S3`)
  return bin
}

function portOf(url: string | undefined): number | undefined {
  if (!url) return undefined
  try {
    return Number(new URL(url).port) || undefined
  } catch {
    return undefined
  }
}
