// A streaming S3 PUT. The minio client reads a whole object into memory before a single-part
// upload (it must know the payload to sign it), which would put every 1-6 MB photo in gateway
// memory. Here the request is signed with SigV4 and an unsigned payload, so the body is piped
// straight from the device's socket to object storage. A photo's PUT carries the sha256 the
// gateway computed on the way as a trailing checksum (aws-chunked.ts): the server checks it
// against what it received and refuses the PUT, storing nothing, if they differ.
import { createHash, createHmac } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Readable } from 'node:stream'
import { AwsChunkedEncoder, awsChunkedLength, SHA256_TRAILER } from './aws-chunked.ts'
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

/** Object storage answered the PUT with another status than 200 (`statusCode`; a checksum that does not match is 400), or timed out. */
export class S3PutError extends AppError {
  constructor(
    readonly code: 's3_put_refused' | 's3_put_timeout',
    message: string,
    readonly statusCode?: number,
  ) {
    super(message)
  }
}

export interface StreamPutOptions {
  /** The body's length in bytes (with a trailer, the decoded length: the encoded one is worked out here). */
  contentLength: number
  contentType?: string
  /** Becomes x-amz-meta-<name>; values must be ASCII (callers URI-encode free text). */
  metadata?: Record<string, string>
  /**
   * The body's SHA-256 in base64, called once the body has ended: sent as the trailing
   * x-amz-checksum-sha256, which the server verifies before it stores the object.
   */
  trailingSha256?: () => string
}

export function streamPut(s3: S3Settings['s3'], bucket: string, key: string, body: Readable, opts: StreamPutOptions): Promise<void> {
  const endpoint = new URL(s3.endpoint)
  const path = `/${bucket}/${encodePath(key)}`
  const now = new Date()
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '')
  const day = amzDate.slice(0, 8)

  const trailer = opts.trailingSha256
  const payload = trailer ? 'STREAMING-UNSIGNED-PAYLOAD-TRAILER' : 'UNSIGNED-PAYLOAD'
  const headers: Record<string, string> = {
    host: endpoint.host,
    'content-length': String(trailer ? awsChunkedLength(opts.contentLength) : opts.contentLength),
    'content-type': opts.contentType ?? 'application/octet-stream',
    'x-amz-content-sha256': payload,
    'x-amz-date': amzDate,
  }
  if (trailer) {
    headers['content-encoding'] = 'aws-chunked'
    headers['x-amz-decoded-content-length'] = String(opts.contentLength)
    headers['x-amz-trailer'] = SHA256_TRAILER
  }
  for (const [k, v] of Object.entries(opts.metadata ?? {})) headers[`x-amz-meta-${k.toLowerCase()}`] = v
  const names = Object.keys(headers).sort()
  const canonical = ['PUT', path, '', ...names.map((n) => `${n}:${headers[n]!.trim()}`), '', names.join(';'), payload].join('\n')
  const scope = `${day}/${s3.region}/s3/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n')
  const signingKey = hmac(hmac(hmac(hmac('AWS4' + s3.secretKey, day), s3.region), 's3'), 'aws4_request')
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${s3.accessKey}/${scope}, SignedHeaders=${names.join(';')}, Signature=${hmac(signingKey, toSign).toString('hex')}`

  const request = endpoint.protocol === 'https:' ? httpsRequest : httpRequest
  return new Promise((resolve, reject) => {
    let settled = false
    const finish = (err?: Error) => {
      if (settled) return
      settled = true
      if (err) reject(err)
      else resolve()
    }
    const req = request(
      { method: 'PUT', hostname: endpoint.hostname, port: endpoint.port || undefined, path, headers, timeout: 60_000 },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.length < 64 && chunks.push(c))
        res.on('end', () => {
          if (res.statusCode === 200) finish()
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
    // stores a partial object under this key. With a trailer the encoder fails too on a byte
    // count other than the one promised, and a cut body never sends the trailer at all.
    const fail = (err: Error) => {
      req.destroy(err)
      finish(err)
    }
    const source = trailer ? body.pipe(new AwsChunkedEncoder(opts.contentLength, trailer)) : body
    body.on('error', fail)
    if (source !== body) source.on('error', fail)
    if (trailer) {
      // An input buffer leaves the encoder as up to five pieces (chunk headers, bytes, CRLFs),
      // each a system call on its own. Corked until the end of the tick, as Node corks its own
      // chunked encoding, they leave as one writev. Registered before pipe(), so it runs first.
      source.on('data', () => {
        if (req.writableCorked) return
        req.cork()
        process.nextTick(() => req.uncork())
      })
    }
    source.pipe(req)
  })
}
