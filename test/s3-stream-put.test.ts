// The photo PUT's trailing sha256 against the stack's real S3 server (MinIO, and the Versity
// gateway under STACK_S3=versity), with the gateway's own credentials: the server stores the
// bytes when the checksum matches and refuses the PUT, storing nothing, when it does not. This is
// what makes the job's sha256 the stored object's (gateway/routes/media-upload.ts).
import t from 'tap'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import { CHUNK } from '../shared/aws-chunked.ts'
import { objectKeys } from '../shared/keys.ts'
import { createS3 } from '../shared/s3.ts'
import { S3PutError, streamPut } from '../shared/s3-stream-put.ts'
import { readObject } from '../testing/media.ts'
import { asRole, testConfig } from './helpers/env.ts'

const config = testConfig()
const gateway = asRole(config, 'gateway').s3
const bucket = config.s3.bucket
// The test's own reads; the gateway's user may only write.
const s3 = createS3(config.s3)
const ws = `w${randomBytes(4).toString('hex')}`
const keyFor = (media: string) => objectKeys.upload(ws, 'sess-put', media, randomUUID())
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('base64')

/** Sends `bytes` as a socket would: in pieces that do not line up with the 64 KiB chunks. */
const body = (bytes: Buffer) => Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000, 150_000), bytes.subarray(150_000)])

for (const size of [1, CHUNK, 3 * CHUNK + 7, 1_500_000]) {
  t.test(`${size} bytes with their sha256: stored byte for byte`, async (t) => {
    const bytes = randomBytes(size)
    const key = keyFor(`ok${size}`)
    await streamPut(gateway, bucket, key, body(bytes), { contentLength: size, trailingSha256: () => sha256(bytes) })
    t.ok((await readObject(s3, bucket, key)).equals(bytes), 'the object is the bytes sent')
    const stat = await s3.statObject(bucket, key)
    t.equal(stat.size, size, 'its size is the decoded length, not the framed one')
    // S3 and MinIO drop `Content-Encoding: aws-chunked` once they have decoded the body; the
    // Versity gateway keeps it as the object's encoding. Nothing of ours serves that header
    // (the admin panel sets its own), so it is checked on the production server only.
    if (process.env.STACK_S3 !== 'versity') t.not(stat.metaData['content-encoding'], 'aws-chunked', 'the framing is not kept')
  })
}

t.test('a sha256 other than the bytes’: refused with 400, nothing stored', async (t) => {
  const bytes = randomBytes(200_000)
  const key = keyFor('mismatch')
  const other = sha256(Buffer.concat([bytes, Buffer.from([0])]))
  const err = await streamPut(gateway, bucket, key, body(bytes), { contentLength: bytes.length, trailingSha256: () => other }).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof S3PutError, String(err))
  t.equal((err as S3PutError).statusCode, 400, (err as Error).message)
  await t.rejects(s3.statObject(bucket, key), { code: 'NotFound' }, 'no object under the key')
})

// Whether a server keeps anything of a cut PUT is the sweeper's concern (faults/storage.faults.ts
// cuts real uploads and checks what remains); here, that the failure reaches the caller through
// the encoder, instead of the PUT waiting for a trailer that never comes.
t.test('a body that fails mid-way fails the PUT with its error', async (t) => {
  const bytes = randomBytes(300_000)
  const cut = new Readable({ read() {} })
  cut.push(bytes.subarray(0, 100_000))
  setImmediate(() => cut.destroy(new Error('device went away')))
  await t.rejects(
    streamPut(gateway, bucket, keyFor('cut'), cut, { contentLength: bytes.length, trailingSha256: () => sha256(bytes) }),
    /device went away/,
  )
})
