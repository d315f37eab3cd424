// The aws-chunked framing of a photo's PUT (shared/aws-chunked.ts), on its own: the length
// promised in the headers, chunk sizes servers accept, and the trailer. The real servers'
// verdicts are in test/s3-stream-put.test.ts.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import { AwsChunkedEncoder, awsChunkedLength, CHUNK, SHA256_TRAILER } from '../shared/aws-chunked.ts'

/** Splits `bytes` at random points, as a socket would deliver them. */
function pieces(bytes: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(Math.random() * 100_000)
    out.push(bytes.subarray(at, at + n))
    at += n
  }
  return out
}

async function encode(input: Buffer[], size: number, sha: () => string): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of Readable.from(input).pipe(new AwsChunkedEncoder(size, sha))) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

/** An independent reading of the format: the chunk sizes, the bytes, the trailer lines. */
function decode(wire: Buffer): { sizes: number[]; bytes: Buffer; trailer: string } {
  const sizes: number[] = []
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = wire.indexOf('\r\n', at)
    const size = parseInt(wire.subarray(at, eol).toString('latin1'), 16)
    at = eol + 2
    if (size === 0) break
    sizes.push(size)
    parts.push(wire.subarray(at, at + size))
    at += size
    if (wire.subarray(at, at + 2).toString('latin1') !== '\r\n') throw new Error(`no CRLF after chunk ${sizes.length}`)
    at += 2
  }
  return { sizes, bytes: Buffer.concat(parts), trailer: wire.subarray(at).toString('latin1') }
}

for (const size of [0, 1, 8191, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5, 1_234_567]) {
  t.test(`${size} bytes, delivered in random pieces`, async (t) => {
    const bytes = randomBytes(size)
    const sha = createHash('sha256').update(bytes).digest('base64')
    const wire = await encode(pieces(bytes), size, () => sha)
    t.equal(wire.length, awsChunkedLength(size), 'exactly the Content-Length the PUT promised')
    const got = decode(wire)
    t.ok(got.bytes.equals(bytes), 'the bytes, in order')
    t.ok(
      got.sizes.slice(0, -1).every((n) => n === CHUNK),
      'every chunk but the last is 64 KiB (servers refuse chunks under 8 KiB before the last)',
    )
    t.equal(got.sizes.length, Math.ceil(size / CHUNK))
    t.equal(got.trailer, `${SHA256_TRAILER}:${sha}\r\n\r\n`, 'the trailer, then the empty line')
  })
}

t.test('the trailer is asked for only after the last byte', async (t) => {
  const bytes = randomBytes(CHUNK + 10)
  let passed = 0
  const counted = Readable.from(pieces(bytes)).on('data', (c: Buffer) => (passed += c.length))
  const wire = await text(counted.pipe(new AwsChunkedEncoder(bytes.length, () => String(passed))))
  t.ok(wire.endsWith(`${SHA256_TRAILER}:${bytes.length}\r\n\r\n`), 'every byte had passed when the trailer was made')
})

t.test('a body shorter or longer than promised fails the stream', async (t) => {
  const bytes = randomBytes(1000)
  await t.rejects(
    encode([bytes], 1001, () => 'x'),
    /1000 bytes of the 1001 declared/,
    'a cut body never gets its trailer',
  )
  await t.rejects(
    encode([bytes], 999, () => 'x'),
    /more than the 999 bytes declared/,
  )
})
