// Photo uploads for B4 (straight to S3 with the minio client) and T3/T3a (through the gateway, as
// a phone sends them: PUT with Content-Length, Content-Type image/jpeg, Content-Disposition).
import { Agent, request } from 'node:http'
import type { Client } from 'minio'

export interface UploadResult {
  bytes: number
  uploads: number
  statuses: Record<string, number>
  errors: number
  /** Epoch ms, so the parent can line these up with its own clock (same machine). */
  startedAt: number
  endedAt: number
}

/** Runs `count` tasks with at most `concurrency` at a time. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await task(next++)
    }),
  )
}

export async function s3Puts(
  s3: Client,
  bucket: string,
  prefix: string,
  photo: Buffer,
  sizes: number[],
  concurrency: number,
): Promise<UploadResult> {
  const statuses: Record<string, number> = {}
  let bytes = 0
  const startedAt = Date.now()
  await pool(sizes.length, concurrency, async (i) => {
    const body = photo.subarray(0, sizes[i]!)
    await s3.putObject(bucket, `${prefix}/${i}.jpg`, body, body.length, { 'Content-Type': 'image/jpeg' })
    bytes += body.length
    statuses['200'] = (statuses['200'] ?? 0) + 1
  })
  return { bytes, uploads: sizes.length, statuses, errors: 0, startedAt, endedAt: Date.now() }
}

export async function gatewayPuts(
  target: { host: string; port: number },
  paths: string[],
  photo: Buffer,
  sizes: number[],
  concurrency: number,
): Promise<UploadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const statuses: Record<string, number> = {}
  let bytes = 0
  let errors = 0
  const startedAt = Date.now()
  await pool(paths.length, concurrency, async (i) => {
    const body = photo.subarray(0, sizes[i % sizes.length]!)
    const status = await new Promise<number>((resolve) => {
      const req = request(
        {
          agent,
          ...target,
          method: 'PUT',
          path: paths[i]!,
          headers: {
            'content-type': 'image/jpeg',
            'content-length': String(body.length),
            'content-disposition': `attachment; filename=20240101_120000_${i}_cropped.jpg`,
          },
        },
        (res) => {
          res.resume()
          res.once('end', () => resolve(res.statusCode ?? 0))
        },
      )
      req.once('error', () => resolve(0))
      // Written in 64 KiB pieces, as a phone's socket delivers it, not as one buffer.
      for (let o = 0; o < body.length; o += 65536) req.write(body.subarray(o, o + 65536))
      req.end()
    })
    if (status === 0) errors++
    else statuses[status] = (statuses[status] ?? 0) + 1
    if (status === 201) bytes += body.length
  })
  agent.destroy()
  return { bytes, uploads: paths.length, statuses, errors, startedAt, endedAt: Date.now() }
}
