import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Client as MinioClient } from 'minio';
import { ensureBinaries, type Binaries } from './install.ts';
import { defaultStackDir } from './paths.ts';
import { startFerretDB, startRedis, startVersityGW, type ServiceHandle } from './services.ts';
import { claimStackDir, loadOrCreateCredentials, readEnvFile, writeEnvFile } from './stack-dir.ts';

export type { ServiceHandle } from './services.ts';

export interface StackOptions {
  /** Stack dir holding data, logs and the env file; default `<repo>/.stack`. */
  dir?: string;
  /** Extra redis-server flags, e.g. ['--appendfsync', 'always', '--maxmemory', '64mb']. */
  redisArgs?: string[];
  /** Per-service readiness deadline; default 60 s. */
  readyTimeoutMs?: number;
  /** Binary paths; default: ensureBinaries(). */
  binaries?: Binaries;
}

export interface Stack {
  dir: string;
  /** REDIS_URL, MONGODB_URL, S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, S3_BUCKET. */
  env: Record<string, string>;
  /** `<dir>/env`, the same variables as NAME=value lines. */
  envFile: string;
  redis: ServiceHandle;
  mongo: ServiceHandle;
  s3: ServiceHandle;
  /** Stops all three services; safe to call twice. */
  stop(): Promise<void>;
}

export const S3_REGION = 'us-east-1';
export const S3_BUCKET = 'rdt-media';

export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const dir = resolve(opts.dir ?? defaultStackDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const bins = opts.binaries ?? (await ensureBinaries());
  const claim = await claimStackDir(dir);
  const envFile = join(dir, 'env');
  try {
    const creds = await loadOrCreateCredentials(dir);
    // Reuse last run's ports when they are free, so that a shell that
    // sourced .stack/env keeps working after a restart.
    const prev = await readEnvFile(envFile);
    const common = (name: string, url: string | undefined) => ({
      dataDir: join(dir, name),
      logFile: join(dir, `${name}.log`),
      port: portOf(url),
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      onSpawn: (pid: number) => claim.setServicePid(name, pid),
    });

    const results = await Promise.allSettled([
      startRedis(bins.redisServer, { ...common('redis', prev.REDIS_URL), extraArgs: opts.redisArgs }),
      startFerretDB(bins.ferretdb, common('ferretdb', prev.MONGODB_URL)),
      startVersityGW(bins.versitygw, { ...common('s3', prev.S3_ENDPOINT), ...creds, region: S3_REGION }),
    ]);
    const [redis, mongo, s3] = results.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
    if (!redis || !mongo || !s3) {
      await Promise.all([redis?.stop(), mongo?.stop(), s3?.stop()]);
      const reasons = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
      throw new Error(`local stack failed to start in ${dir}:\n- ${reasons.join('\n- ')}`);
    }

    const env: Record<string, string> = {
      REDIS_URL: redis.url,
      MONGODB_URL: `${mongo.url}/rdt`,
      S3_ENDPOINT: s3.url,
      S3_ACCESS_KEY: creds.accessKey,
      S3_SECRET_KEY: creds.secretKey,
      S3_REGION,
      S3_BUCKET,
    };
    try {
      await ensureBucket(s3.port, creds.accessKey, creds.secretKey);
      await writeEnvFile(envFile, env);
    } catch (err) {
      await Promise.all([redis.stop(), mongo.stop(), s3.stop()]);
      throw err;
    }

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await Promise.all([redis.stop(), mongo.stop(), s3.stop()]);
        await claim.release();
      })());
    return { dir, env, envFile, redis, mongo, s3, stop };
  } catch (err) {
    await claim.release();
    throw err;
  }
}

/** Private bucket (no policy): objects are only reachable signed or presigned. */
async function ensureBucket(port: number, accessKey: string, secretKey: string): Promise<void> {
  const client = new MinioClient({ endPoint: '127.0.0.1', port, useSSL: false, accessKey, secretKey, region: S3_REGION, pathStyle: true });
  if (!(await client.bucketExists(S3_BUCKET))) await client.makeBucket(S3_BUCKET, S3_REGION);
}

function portOf(url: string | undefined): number | undefined {
  if (!url) return undefined;
  try {
    return Number(new URL(url).port) || undefined;
  } catch {
    return undefined;
  }
}
