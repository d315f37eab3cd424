import { mkdir, readFile } from 'node:fs/promises'
import { Redis } from 'ioredis'
import { Client as MinioClient } from 'minio'
import { MongoClient } from 'mongodb'
import { freePort } from './ports.ts'
import { ChildService, ServiceError, type ServiceHandle } from './service.ts'

export type { ServiceHandle } from './service.ts'

export interface ServiceOptions {
  /** Data directory; created if missing. */
  dataDir: string
  logFile: string
  /** Port to try first (e.g. last run's); a free one is chosen otherwise. */
  port?: number
  readyTimeoutMs?: number
  /** Called with each new pid, and the process's own name when a service has several (distributed MinIO's nodes). */
  onSpawn?: (pid: number, which?: string) => void
}

/** Durable settings the pipeline relies on (AOF, no eviction: BullMQ needs every key). */
export const REDIS_BASE_ARGS = [
  '--appendonly',
  'yes',
  '--appendfsync',
  'everysec',
  '--maxmemory-policy',
  'noeviction',
  '--save',
  '',
  '--daemonize',
  'no',
  '--protected-mode',
  'yes',
]

export interface RedisOptions extends ServiceOptions {
  extraArgs?: string[]
  /** ACL file (users with passwords); unauthenticated connections then get NOAUTH. */
  aclFile?: string
  /** A user of that file allowed INFO, for the readiness probe. */
  probeUser?: { username: string; password: string }
}

export async function startRedis(bin: string, opts: RedisOptions): Promise<ServiceHandle> {
  const acl = opts.aclFile ? ['--aclfile', opts.aclFile] : []
  return startOnFreePort(opts, (port) => ({
    name: 'redis',
    url: `redis://127.0.0.1:${port}`,
    command: bin,
    // Later flags win in redis, so extraArgs can override the defaults.
    args: ['--port', String(port), '--bind', '127.0.0.1', '--dir', opts.dataDir, ...acl, ...REDIS_BASE_ARGS, ...(opts.extraArgs ?? [])],
    probe: () => pingRedis(port, opts.probeUser),
  }))
}

export async function startFerretDB(bin: string, opts: ServiceOptions): Promise<ServiceHandle> {
  return startOnFreePort(opts, (port) => ({
    name: 'ferretdb',
    url: `mongodb://127.0.0.1:${port}`,
    command: bin,
    args: ['-listen', `127.0.0.1:${port}`, '-dir', opts.dataDir, '-log-level', 'error'],
    probe: () => pingMongo(port),
  }))
}

export interface S3Options extends ServiceOptions {
  accessKey: string
  secretKey: string
  region: string
}

export async function startVersityGW(bin: string, opts: S3Options): Promise<ServiceHandle> {
  // versitygw reads many settings from the environment (VGW_*, ROOT_*,
  // even LOGFILE and WEBHOOK), so drop inherited ones that could change it.
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(VGW_|ROOT_)|^(LOGFILE|WEBHOOK)$/.test(k)) env[k] = v
  }
  // Credentials via the environment, not argv, so they don't show in `ps`.
  env.ROOT_ACCESS_KEY = opts.accessKey
  env.ROOT_SECRET_KEY = opts.secretKey
  return startOnFreePort(opts, (port) => ({
    name: 's3',
    url: `http://127.0.0.1:${port}`,
    command: bin,
    // --quiet: no log line per request. --keep-alive: without it every S3
    // call opens a new TCP connection, which under load piles up TIME_WAITs.
    args: ['--port', `127.0.0.1:${port}`, '--region', opts.region, '--quiet', '--keep-alive', 'posix', opts.dataDir],
    env,
    probe: () => pingS3(port, opts),
  }))
}

/**
 * MinIO, erasure-coded over four drive folders in the data dir, as a small production setup runs
 * it. MINIO_CI_CD=1: without it MinIO refuses drives on the root disk and waits for ever. The
 * console listens on loopback only (a second free port); nothing here uses it.
 */
export async function startMinio(bin: string, opts: S3Options): Promise<ServiceHandle> {
  const drives = [1, 2, 3, 4].map((i) => `${opts.dataDir}/d${i}`)
  for (const d of drives) await mkdir(d, { recursive: true, mode: 0o700 })
  const env = minioEnv(opts)
  const consolePort = await freePort()
  return startOnFreePort(opts, (port) => ({
    name: 's3',
    url: `http://127.0.0.1:${port}`,
    command: bin,
    // `{1...4}` is MinIO's own expansion (not the shell's): one argument, four drives.
    args: [
      'server',
      '--quiet',
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      `${opts.dataDir}/d{1...4}`,
    ],
    env,
    probe: () => pingS3(port, opts),
  }))
}

/** MinIO's environment: credentials (via the environment, not argv, so they don't show in `ps`), none inherited. */
export function minioEnv(opts: S3Options, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // MinIO reads much from MINIO_* (even a KMS or an identity provider), so drop inherited ones.
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(MINIO_|MC_)/.test(k)) env[k] = v
  return Object.assign(env, {
    // Without it MinIO refuses drives on the root disk and waits for ever.
    MINIO_CI_CD: '1',
    MINIO_ROOT_USER: opts.accessKey,
    MINIO_ROOT_PASSWORD: opts.secretKey,
    MINIO_REGION: opts.region,
    // No phone-home and no update checks from a test service.
    MINIO_UPDATE: 'off',
    ...extra,
  })
}

type Def = Pick<ConstructorParameters<typeof ChildService>[0], 'name' | 'url' | 'command' | 'args' | 'env' | 'probe'>

/**
 * Starts a service, retrying on a fresh port when it dies with "address in
 * use": the port we picked can be taken between our probe and its bind.
 */
async function startOnFreePort(opts: ServiceOptions, def: (port: number) => Def): Promise<ServiceHandle> {
  await mkdir(opts.dataDir, { recursive: true, mode: 0o700 })
  let preferred = opts.port
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(preferred)
    preferred = undefined
    const svc = new ChildService({ ...def(port), port, logFile: opts.logFile, readyTimeoutMs: opts.readyTimeoutMs, onSpawn: opts.onSpawn })
    try {
      await svc.start()
      return svc
    } catch (err) {
      const diedByItself = svc.pid === undefined
      await svc.kill()
      if (attempt < 3 && err instanceof ServiceError && diedByItself && (await addrInUse(opts.logFile))) continue
      throw err
    }
  }
}

async function addrInUse(logFile: string): Promise<boolean> {
  const text = await readFile(logFile, 'utf8').catch(() => '')
  const lastRun = text.slice(text.lastIndexOf('\n--- '))
  return /address already in use|EADDRINUSE/i.test(lastRun)
}

const PROBE_TIMEOUT_MS = 2_000

export async function pingRedis(port: number, user?: { username: string; password: string }): Promise<void> {
  const r = new Redis({
    host: '127.0.0.1',
    port,
    ...user,
    lazyConnect: true,
    connectTimeout: PROBE_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
    // The default ready check waits out AOF loading, which is what we want.
  })
  r.on('error', () => {}) // failures surface through connect()/ping()
  try {
    await r.connect()
    await r.ping()
  } finally {
    r.disconnect()
  }
}

async function pingMongo(port: number): Promise<void> {
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, {
    directConnection: true,
    serverSelectionTimeoutMS: PROBE_TIMEOUT_MS,
    connectTimeoutMS: PROBE_TIMEOUT_MS,
  })
  try {
    await client.db('admin').command({ ping: 1 })
  } finally {
    await client.close()
  }
}

export async function pingS3(port: number, opts: S3Options): Promise<void> {
  const client = new MinioClient({
    endPoint: '127.0.0.1',
    port,
    useSSL: false,
    accessKey: opts.accessKey,
    secretKey: opts.secretKey,
    region: opts.region,
    pathStyle: true,
    // This loop retries by itself; the client's own retry of a 503 (MinIO while its drives
    // come up) only adds a console warning.
    retryOptions: { disableRetry: true },
  })
  // The minio client has no per-call timeout; a gateway that accepts but
  // never answers must not stall the readiness loop.
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('listBuckets timed out')), PROBE_TIMEOUT_MS)
  })
  try {
    await Promise.race([client.listBuckets(), timeout])
  } finally {
    clearTimeout(timer)
  }
}
