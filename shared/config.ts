// The settings sections that several processes share. Each process composes its own config from
// these and its own settings (gateway/config.ts, worker/config.ts, admin/config.ts, cli/config.ts),
// so a process asks only for what it uses: the CLI needs no S3 key, the gateway no MongoDB URL.
// Every loader reads the environment it is given and nothing else; only the development launcher
// (stack/run-as.ts) fills that environment from `.stack/env`.
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { fail, int, required, url, type Env } from './config-vars.ts'
import { MAX_SHARDS, isHashTag } from './redis-shards.ts'

export interface ProcessSettings {
  /** Address the process listens on. */
  host: string
  logLevel: string
}

export interface RedisSettings {
  /** One server, or (with a cluster) the scheme, user and password every node is reached with, and one more seed node. */
  redisUrl: string
  /** REDIS_CLUSTER_NODES: the seed nodes of a Redis Cluster, or null for one server. */
  redisClusterNodes: RedisNode[] | null
  /**
   * BullMQ prefix and the prefix of every other Redis key we own. A hash tag keeps one slot on a
   * Redis Cluster. It is also shard 0's prefix and the home of the keys every shard shares (the
   * token mirror); shard k's is shared/redis-shards.ts's shardPrefix(redisPrefix, k).
   */
  redisPrefix: string
  /** REDIS_SHARDS: how many shards the work is spread over (each workspace belongs to one). */
  redisShards: number
}

export interface RedisNode {
  host: string
  port: number
}

export interface MongoSettings {
  mongodbUrl: string
  mongoWriteConcern: string | number
}

export interface S3Settings {
  s3: { endpoint: string; accessKey: string; secretKey: string; bucket: string; region: string }
}

export interface TlsSettings {
  /**
   * TLS_CERT_FILE + TLS_KEY_FILE, read at start: the gateway and the admin panel then serve HTTPS
   * themselves (a single box without a proxy; compose puts Caddy in front instead). null = plain
   * HTTP. The metrics listeners stay plain HTTP on their own port either way.
   */
  tls: TlsFiles | null
}

export interface TlsFiles {
  certFile: string
  keyFile: string
  /** PEM: the server certificate, optionally followed by its intermediates. */
  cert: Buffer
  key: Buffer
}

/** The idempotency protocol's timings: the gateway claims keys, the worker marks them accepted. */
export interface IdempotencySettings {
  /** A "pending" idempotency key older than this counts as free (its request died before enqueueing). */
  pendingTimeoutMs: number
  /** How long the fast 409 answer is remembered in Redis; MongoDB's unique indexes stay the final authority. */
  idempotencyTtlMs: number
}

export interface MetricsSettings {
  /**
   * Port of the process's own Prometheus listener (/metrics, /healthz); null = the process default (gateway 9464, worker 9465), 0 =
   * off.
   */
  metricsPort: number | null
}

export interface PublicUrlSettings {
  /** The gateway's public base URL, printed in DSNs by the admin panel and the CLI. */
  publicUrl: string
}

/** A section reader: some settings from the environment, each variable named in its errors. */
export type Section = (env: Env) => object

type Intersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never

/** The settings of a list of sections, as one type: [redisSettings, s3Settings] gives RedisSettings & S3Settings. */
export type SettingsOf<S extends readonly Section[]> = Intersection<ReturnType<S[number]>>

/**
 * A process's config loader: its shared sections plus its own settings, read from the environment
 * it is given (process.env by default). Each process names its sections once; its config type is
 * the loader's return type.
 */
export function configLoader<S extends readonly Section[], O extends object>(sections: S, own: (env: Env) => O) {
  return (env: Env = process.env): SettingsOf<S> & O =>
    Object.assign({}, ...sections.map((read) => read(env)), own(env)) as SettingsOf<S> & O
}

export function processSettings(env: Env): ProcessSettings {
  return { host: env.HOST || '127.0.0.1', logLevel: env.LOG_LEVEL || 'info' }
}

export function redisSettings(env: Env): RedisSettings {
  const prefix = env.REDIS_PREFIX || '{rdt}'
  if (!/^[A-Za-z0-9{}_-]{1,64}$/.test(prefix) || prefix.includes(':')) fail('REDIS_PREFIX', 'must be 1-64 of [A-Za-z0-9{}_-]')
  const redisClusterNodes = clusterNodes(env)
  const redisShards = int(env, 'REDIS_SHARDS', 1, 1, MAX_SHARDS)
  // Every key of a shard must hash to one slot (scripts and MULTIs span its keys), so on a cluster,
  // or with shards, the prefix must be one whole hash tag.
  if ((redisClusterNodes || redisShards > 1) && !isHashTag(prefix))
    fail('REDIS_PREFIX', `must be a hash tag such as {rdt} with REDIS_CLUSTER_NODES or REDIS_SHARDS > 1, got "${prefix}"`)
  return { redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']), redisClusterNodes, redisPrefix: prefix, redisShards }
}

/** REDIS_CLUSTER_NODES: host:port,host:port,… (at least one; the client discovers the rest). */
function clusterNodes(env: Env): RedisNode[] | null {
  const raw = env.REDIS_CLUSTER_NODES
  if (!raw) return null
  return raw.split(',').map((item) => {
    const m = /^\s*([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})\s*$/.exec(item)
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) fail('REDIS_CLUSTER_NODES', `must be host:port,host:port,…; "${item}" is not`)
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) }
  })
}

export function mongoSettings(env: Env): MongoSettings {
  const wc = env.MONGODB_WRITE_CONCERN || 'majority'
  if (!/^(majority|\d+)$/.test(wc)) fail('MONGODB_WRITE_CONCERN', 'must be "majority" or a number')
  return { mongodbUrl: url(env, 'MONGODB_URL', ['mongodb:', 'mongodb+srv:']), mongoWriteConcern: wc === 'majority' ? wc : Number(wc) }
}

export function s3Settings(env: Env): S3Settings {
  return {
    s3: {
      endpoint: url(env, 'S3_ENDPOINT', ['http:', 'https:']),
      accessKey: required(env, 'S3_ACCESS_KEY'),
      secretKey: required(env, 'S3_SECRET_KEY'),
      bucket: env.S3_BUCKET || 'rdt-media',
      region: env.S3_REGION || 'us-east-1',
    },
  }
}

/** S3 for a process that needs it for some commands only (the CLI's deletions): null when S3_ENDPOINT is unset, else all of s3Settings. */
export function optionalS3Settings(env: Env): { s3: S3Settings['s3'] | null } {
  return env.S3_ENDPOINT ? s3Settings(env) : { s3: null }
}

export function idempotencySettings(env: Env): IdempotencySettings {
  return {
    pendingTimeoutMs: int(env, 'PENDING_TIMEOUT_MS', 10_000, 100),
    // A day covers a device's retry backoff (capped at 5 h) several times over; after that a late
    // replay is accepted again and deduplicated by MongoDB, and Redis memory stays bounded.
    idempotencyTtlMs: int(env, 'IDEMPOTENCY_TTL_MS', 24 * 3600_000, 60_000),
  }
}

export function metricsSettings(env: Env): MetricsSettings {
  return { metricsPort: env.METRICS_PORT ? int(env, 'METRICS_PORT', 0, 0, 65535) : null }
}

/** The gateway's port: it listens on it, and PUBLIC_URL defaults to it. */
export function gatewayPort(env: Env): number {
  return int(env, 'PORT', 8080, 0, 65535)
}

export function publicUrlSettings(env: Env): PublicUrlSettings {
  return { publicUrl: url(env, 'PUBLIC_URL', ['http:', 'https:'], `http://127.0.0.1:${gatewayPort(env)}`).replace(/\/+$/, '') }
}

/**
 * Both or neither. The files are read and paired now, so a typo, an unreadable key or a key of
 * another certificate stops the process at start, naming the variable, instead of at the first
 * handshake.
 */
export function tlsSettings(env: Env): TlsSettings {
  const certFile = env.TLS_CERT_FILE
  const keyFile = env.TLS_KEY_FILE
  if (!certFile && !keyFile) return { tls: null }
  if (!certFile) fail('TLS_CERT_FILE', 'is required when TLS_KEY_FILE is set (set both or neither)')
  if (!keyFile) fail('TLS_KEY_FILE', 'is required when TLS_CERT_FILE is set (set both or neither)')
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file)
    } catch (err) {
      fail(name, `cannot be read: ${(err as Error).message}`)
    }
  }
  const cert = read('TLS_CERT_FILE', certFile)
  const key = read('TLS_KEY_FILE', keyFile)
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    fail('TLS_KEY_FILE', `is not the key of the certificate in TLS_CERT_FILE, or one of them is not PEM (${(err as Error).message})`)
  }
  return { tls: { certFile, keyFile, cert, key } }
}
