// The media endpoint over real HTTP, streaming into the real S3 server: each upload is written once, to its own key.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildGateway } from '../gateway/app.ts'
import { jobIds, objectKeys } from '../shared/keys.ts'
import { createS3 } from '../shared/s3.ts'
import { asRole, inspectorQueues, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { readObject, fakeJpeg } from '../testing/media.ts'

const config = testConfig({ MAX_MEDIA_BYTES: String(2 * 1024 * 1024) })
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
// The test's checks of what was queued (the gateway's user cannot read jobs back).
const queues = inspectorQueues(t, config)
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as AddressInfo).port
const s3 = createS3(config.s3)
t.teardown(() => app.close())

function put(
  path: string,
  body: Buffer,
  headers: Record<string, string | number> = {},
  chunked = false,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'PUT', path, headers: chunked ? headers : { 'content-length': body.length, ...headers } },
      (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      },
    )
    req.on('error', reject)
    if (chunked) {
      // Several writes without Content-Length: Node sends Transfer-Encoding: chunked.
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024))
      req.end()
    } else req.end(body)
  })
}

const base = `/ingest/${seeded.token}/test_session/sess-1/media`

t.test('a JPEG is streamed to its upload object, hashed and sniffed on the way; the job carries only a reference', async (t) => {
  const jpeg = fakeJpeg(300_000)
  const res = await put(`${base}/cropped/`, jpeg, {
    'content-type': 'image/jpeg',
    'content-disposition': 'attachment; filename=20210125_111802_cropped.jpg',
  })
  t.equal(res.status, 201, res.body)
  const job = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', 'cropped'))
  t.ok(job)
  const data = job!.data
  t.equal(data.size, jpeg.length)
  t.equal(data.sha256, createHash('sha256').update(jpeg).digest('hex'))
  t.equal(data.filename, '20210125_111802_cropped.jpg')
  t.equal(data.content_type, 'image/jpeg')
  t.match(data.staging_key, new RegExp(`^media/${seeded.workspaceId}/sess-1/cropped/[0-9a-f-]{36}$`))
  t.ok(objectKeys.isPhotoOf(data.staging_key, seeded.workspaceId, 'sess-1', 'cropped'), 'the key is built from the ids and an upload id')
  t.equal(data.sniffed_type, 'image/jpeg', 'sniffed while streaming')
  t.ok(JSON.stringify(data).length < 2048, 'the job is small: no media bytes in Redis')
  const stored = await readObject(s3, config.s3.bucket, data.staging_key)
  t.ok(stored.equals(jpeg), 'the object is byte for byte the upload')
  const stat = await s3.statObject(config.s3.bucket, data.staging_key)
  t.equal(stat.metaData['content-type'], 'image/jpeg', 'labelled with the sniffed type')
  t.equal(stat.metaData.size, String(jpeg.length), 'the length it must have, for the sweeper')
  // The server checked the gateway's sha256 as the PUT's trailing checksum, and keeps it.
  const head = await s3.makeRequestAsync({
    method: 'HEAD',
    bucketName: config.s3.bucket,
    objectName: data.staging_key,
    headers: { 'x-amz-checksum-mode': 'ENABLED' },
  })
  head.resume()
  t.equal(
    head.headers['x-amz-checksum-sha256'],
    Buffer.from(data.sha256, 'hex').toString('base64'),
    "the server's checksum is the job's sha256",
  )
  const marker = await s3.statObject(config.s3.bucket, objectKeys.pendingOf(data.staging_key)!)
  t.equal(marker.size, 0, 'an empty pending/ marker lets the sweeper find the upload until its job settles it')
  t.equal(stat.metaData['workspace-id'], seeded.workspaceId, 'the sweeper can rebuild the job from object metadata')
  t.equal(stat.metaData['media-id'], 'cropped')
})

t.test('the same media id again is 409', async (t) => {
  const res = await put(`${base}/cropped`, fakeJpeg(1000), { 'content-type': 'image/jpeg' })
  t.equal(res.status, 409)
})

t.test('a chunked upload without Content-Length is accepted through a disk spool', async (t) => {
  const jpeg = fakeJpeg(500_000)
  const res = await put(`${base}/raw/`, jpeg, { 'content-type': 'image/jpeg' }, true)
  t.equal(res.status, 201, res.body)
  const job = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', 'raw'))
  t.equal(job?.data.size, jpeg.length)
  t.ok((await readObject(s3, config.s3.bucket, job!.data.staging_key)).equals(jpeg))
})

t.test('uploads over the limit are 413 and release the media id', async (t) => {
  const big = randomBytes(2 * 1024 * 1024 + 1)
  t.equal((await put(`${base}/attempt_1_raw`, big)).status, 413, 'declared length over the limit')
  t.equal((await put(`${base}/attempt_2_raw`, big, {}, true)).status, 413, 'chunked body over the limit')
  const ok = await put(`${base}/attempt_2_raw`, fakeJpeg(1000), {}, true)
  t.equal(ok.status, 201, 'the id was released, a good retry is accepted')
})

t.test('Content-Disposition: filename* wins, paths and control characters are removed', async (t) => {
  const cases: [string, string, string | null][] = [
    ['m1', `attachment; filename="a.jpg"; filename*=UTF-8''%E2%82%AC%20rates.jpg`, '€ rates.jpg'],
    ['m2', 'attachment; filename="../../etc/passwd"', 'passwd'],
    ['m3', 'attachment; filename="C:\\\\dir\\\\x.jpg"', 'x.jpg'],
    ['m4', 'attachment; filename="a\u0001b.jpg"', null],
    ['m5', 'inline', null],
  ]
  for (const [id, header, expected] of cases) {
    let res
    try {
      res = await put(`${base}/${id}`, fakeJpeg(100), { 'content-disposition': header })
    } catch {
      // Node refuses to send control characters in headers itself; nothing to test then.
      continue
    }
    t.equal(res.status, 201, header)
    const job = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', id))
    if (expected !== null) t.equal(job?.data.filename, expected, header)
    else t.ok(job?.data.filename === null || !/[\u0000-\u001f]/.test(job!.data.filename), header)
  }
  const long = await put(`${base}/m6`, fakeJpeg(100), { 'content-disposition': `attachment; filename="${'x'.repeat(2000)}.jpg"` })
  t.equal(long.status, 201)
  const job = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', 'm6'))
  t.ok(job!.data.filename!.length <= 255, 'long names are bounded')
})

t.test('any content type is accepted, and bad ids are 400', async (t) => {
  t.equal((await put(`${base}/svg1`, Buffer.from('<svg onload=alert(1)>'), { 'content-type': 'image/svg+xml' })).status, 201)
  const job = await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', 'svg1'))
  t.equal(job?.data.content_type, 'image/svg+xml', 'the declared type is kept as metadata')
  t.equal(job?.data.sniffed_type, 'application/octet-stream', 'but never trusted: not an image')
  const stat = await s3.statObject(config.s3.bucket, job!.data.staging_key)
  t.equal(stat.metaData['content-type'], 'application/octet-stream', 'the object is labelled with what its bytes are')
  const tiny = await put(`${base}/tiny`, Buffer.from([0xff, 0xd8]), {}, true)
  t.equal(tiny.status, 201, 'a body shorter than the sniffed head is accepted')
  t.equal((await queues.media.getJob(jobIds.media(seeded.workspaceId, 'sess-1', 'tiny')))?.data.size, 2)
  t.equal((await put(`${base}/bad.id`, fakeJpeg(10))).status, 400)
  t.equal((await put(`${base}/${'m'.repeat(129)}`, fakeJpeg(10))).status, 400)
})

t.test('a token without the media permission is 403 and nothing is staged', async (t) => {
  const noMedia = await seedToken(config, { permissions: ['test_session', 'logs'] })
  const res = await put(`/ingest/${noMedia.token}/test_session/s/media/raw`, fakeJpeg(100))
  t.equal(res.status, 403)
  t.notOk(await queues.media.getJob(jobIds.media(noMedia.workspaceId, 's', 'raw')))
})
