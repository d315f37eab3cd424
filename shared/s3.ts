// The object-storage client. Works with MinIO (production and the local stack) and the Versity
// S3 gateway (CI runs the photo tests on it too), and should with any S3 server.
import { Client } from 'minio'
import type { S3Settings } from './config.ts'

export function createS3(cfg: S3Settings['s3']): Client {
  const u = new URL(cfg.endpoint)
  return new Client({
    endPoint: u.hostname,
    port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80,
    useSSL: u.protocol === 'https:',
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    region: cfg.region,
    // Path-style keeps bucket names out of DNS, which local gateways and MinIO both need.
    pathStyle: true,
  })
}

/** Creates the bucket when it is missing. It is never given a public policy: media is private. */
export async function ensureBucket(s3: Client, bucket: string, region: string): Promise<void> {
  if (await s3.bucketExists(bucket)) return
  try {
    await s3.makeBucket(bucket, region)
  } catch (err) {
    // Another process created it in the meantime.
    if (!(await s3.bucketExists(bucket))) throw err
  }
}
