// Object storage unreachable: a photo upload must get 503 + Retry-After (the device retries
// later), whatever its size, never a 4xx. A small photo used to get 400 "upload did not
// complete": its request had been read to the end, and Node destroys a request once it has
// ended, which the route mistook for a device that hung up. And a large photo's retry on the
// same keep-alive connection hung for the keep-alive timeout (72 s), because the first body was
// never read to its end: the gateway now closes such a connection after answering. Both found
// by the fault suite (faults/storage.faults.ts). Redis is the real one; S3 is an address where
// nothing listens.
import t from 'tap'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildGateway } from '../gateway/app.ts'
import { freePort } from '../stack/ports.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { fakeJpeg } from '../testing/media.ts'

const closedPort = await freePort()
const config = testConfig({ S3_ENDPOINT: `http://127.0.0.1:${closedPort}` })
const seeded = await seedToken(config)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as AddressInfo).port
t.teardown(() => app.close())

function put(path: string, body: Buffer, headers: Record<string, string | number>, chunked = false) {
  return new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: 'PUT', path, headers: chunked ? headers : { 'content-length': body.length, ...headers } },
      (res) => {
        let text = ''
        res.on('data', (c) => (text += c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: text }))
      },
    )
    req.on('error', reject)
    if (chunked) {
      for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024))
      req.end()
    } else req.end(body)
  })
}

for (const size of [200, 20_000, 600_000]) {
  for (const chunked of [false, true]) {
    t.test(`a ${size}-byte photo${chunked ? ' (chunked)' : ''} with S3 unreachable gets 503`, async (t) => {
      const media = `m${size}${chunked ? 'c' : ''}`
      const res = await put(
        `/ingest/${seeded.token}/test_session/s3-down/media/${media}/`,
        fakeJpeg(size),
        { 'content-type': 'image/jpeg' },
        chunked,
      )
      t.equal(res.status, 503, res.body)
      t.ok(Number(res.retryAfter) > 0, 'with Retry-After')
      // The retry (on the same keep-alive agent, as a phone would) is answered at once, and
      // the same way: the claim was given back, so it is not 409 either.
      const again = await put(
        `/ingest/${seeded.token}/test_session/s3-down/media/${media}/`,
        fakeJpeg(size),
        { 'content-type': 'image/jpeg' },
        chunked,
      )
      t.equal(again.status, 503, 'a retry is refused the same way, not answered 409')
    })
  }
}
