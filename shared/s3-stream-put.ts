// A streaming S3 PUT. The minio client reads a whole object into memory before a single-part
// upload (it must know the payload to sign it), which would put every 1-6 MB photo in gateway
// memory. Here the request is signed with SigV4 and UNSIGNED-PAYLOAD, so the body is piped
// straight from the device's socket to object storage; integrity comes from our own sha256, and
// from the ETag where the server's ETag is the body's MD5 (the caller compares).
import { createHash, createHmac } from 'node:crypto'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Readable } from 'node:stream'
import type { S3Settings } from './config.ts'
import { AppError } from './errors.ts'

const sha256hex = (s: string) => createHash('sha256').update(s).digest('hex')
const hmac = (key: Buffer | string, s: string) => createHmac('sha256', key).update(s).digest()

/** RFC 3986 encoding as SigV4 wants it, keeping '/' in the path. */
function encodePath(path: string): string {
  return path
    .split('/')
    .map((seg) => encodeURIComponent(seg).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()))
    .join('/')
}

/** Object storage answered the PUT with another status than 200 (`statusCode`), did not answer in time, or stored other bytes. */
export class S3PutError extends AppError {
  constructor(
    readonly code: 's3_put_refused' | 's3_put_timeout' | 's3_put_mismatch',
    message: string,
    readonly statusCode?: number,
  ) {
    super(message)
  }
}

export interface StreamPutOptions {
  contentLength: number
  contentType?: string
  /** Becomes x-amz-meta-<name>; values must be ASCII (callers URI-encode free text). */
  metadata?: Record<string, string>
}

export interface StreamPutResult {
  /** The ETag the server answered, without its quotes; null if it sent none. */
  etag: string | null
  /** The ETag if it can be the body's MD5 (etagAsMd5), lower-case; null if it cannot, and then nothing is compared. */
  md5: string | null
}

/**
 * The PUT's ETag as an MD5 of the body, or null when it need not be one. Only a plain MD5's shape
 * (32 hex digits, no '-') is taken: a multipart upload's ETag ends in '-<parts>', and other
 * servers answer other shapes. An object encrypted with SSE-KMS or a customer key has an ETag of
 * that shape that is not its MD5 (S3's documented behaviour), so those are not taken either. The
 * caller fails the upload on a mismatch, so a server whose ETags are not MD5s must come out null
 * here, or every photo would be answered 503. Checked: MinIO and the pinned Versity S3 gateway
 * (STACK_S3=versity) both answer the body's MD5 for this streamed single PUT, 0 B to 6 MB.
 */
export function etagAsMd5(headers: IncomingHttpHeaders): string | null {
  const etag = typeof headers.etag === 'string' ? headers.etag.replace(/^"|"$/g, '').toLowerCase() : null
  if (etag === null || !/^[0-9a-f]{32}$/.test(etag)) return null
  const sse = headers['x-amz-server-side-encryption']
  if (typeof sse === 'string' && sse.startsWith('aws:kms')) return null
  if (headers['x-amz-server-side-encryption-customer-algorithm'] !== undefined) return null
  return etag
}

export function streamPut(
  s3: S3Settings['s3'],
  bucket: string,
  key: string,
  body: Readable,
  opts: StreamPutOptions,
): Promise<StreamPutResult> {
  const endpoint = new URL(s3.endpoint)
  const path = `/${bucket}/${encodePath(key)}`
  const now = new Date()
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)

  const headers: Record<string, string> = {
    host: endpoint.host,
    'content-length': String(opts.contentLength),
    'content-type': opts.contentType ?? 'application/octet-stream',
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    'x-amz-date': amzDate,
  }
  for (const [k, v] of Object.entries(opts.metadata ?? {})) headers[`x-amz-meta-${k.toLowerCase()}`] = v
  const names = Object.keys(headers).sort()
  const canonical = ['PUT', path, '', ...names.map((n) => `${n}:${headers[n]!.trim()}`), '', names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n')
  const scope = `${day}/${s3.region}/s3/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n')
  const signingKey = hmac(hmac(hmac(hmac('AWS4' + s3.secretKey, day), s3.region), 's3'), 'aws4_request')
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${s3.accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${hmac(signingKey, toSign).toString('hex')}`

  const request = endpoint.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    let settled = false
    const finish = (err?: Error, result: StreamPutResult = { etag: null, md5: null }) => {
      if (settled) return
      settled = true
      if (err) reject(err)
      else resolve(result)
    }
    const req = request(
      { method: 'PUT', hostname: endpoint.hostname, port: endpoint.port || undefined, path, headers, timeout: 60_000 },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c))
        res.on('end', () => {
          const etag = typeof res.headers.etag === 'string' ? res.headers.etag.replace(/^"|"$/g, '') : null
          if (res.statusCode === 200) finish(undefined, { etag, md5: etagAsMd5(res.headers) })
          else
            finish(
              new S3PutError(
                's3_put_refused',
                `S3 PUT ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`,
                res.statusCode,
              ),
            )
        })
        res.on('error', finish)
      },
    )
    req.on('timeout', () => req.destroy(new S3PutError('s3_put_timeout', 'S3 PUT timed out')))
    req.on('error', (err) => finish(err))
    // A body that fails mid-way (device disconnected, size limit) aborts the PUT, so S3 never
    // stores a partial object under this key.
    body.on('error', (err) => {
      req.destroy(err)
      finish(err)
    })
    body.pipe(req)
  })
}
