// The object-storage client. Works with MinIO (production and the local stack) and the Versity
// S3 gateway (CI runs the photo tests on it too), and should with any S3 server.
import http, { type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http'
import https from 'node:https'
import { Client } from 'minio'
import type { S3Settings } from './config.ts'

/**
 * How long an S3 request may go without a byte either way before it is abandoned. The minio
 * client sets no timeout of its own, so a request the server never answers waits for ever, and
 * with it whatever awaits it: a media job, or the upload sweeper's whole loop. Distributed MinIO
 * that lost a node was seen to hold requests for tens of seconds (the fault suite's node kill).
 * Idle time, not total time: a large photo that keeps flowing is never cut.
 */
export const S3_IDLE_TIMEOUT_MS = 30_000

/** http(s).request with the idle timeout: the request fails with an error the callers already handle. */
export function idleTimeoutTransport(base: typeof http | typeof https, idleMs: number): Pick<typeof http, 'request'> {
  // The minio client calls request(options, callback) only; the cast covers http.request's other overloads.
  const request = (opts: RequestOptions, cb?: (res: IncomingMessage) => void): ClientRequest => {
    const req = base.request(opts, cb)
    req.setTimeout(idleMs, () => req.destroy(Object.assign(new Error(`S3 request idle for ${idleMs} ms`), { code: 'ETIMEDOUT' })))
    return req
  }
  return { request: request as typeof http.request }
}

export function createS3(cfg: S3Settings['s3'], idleMs = S3_IDLE_TIMEOUT_MS): Client {
  const u = new URL(cfg.endpoint)
  const useSSL = u.protocol === 'https:'
  return new Client({
    endPoint: u.hostname,
    port: u.port ? Number(u.port) : useSSL ? 443 : 80,
    useSSL,
    transport: idleTimeoutTransport(useSSL ? https : http, idleMs),
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
