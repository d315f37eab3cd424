// Answers sent before the body was read reach the client (including "media 409 on a
// reused connection"), through a real gateway on a real port, with a client that writes its whole
// request before it reads (test/helpers/write-then-read.ts). Before the drain, every one of the
// 12 MB Content-Length cases below ended in EPIPE with no answer (5 of 5 on this machine), so each
// case is repeated: a single lucky pass would prove nothing.
import t from 'tap'
import { request, Agent } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildGateway } from '../gateway/app.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { chunked } from './helpers/hostile.ts'
import { fakeJpeg } from '../testing/media.ts'
import { parseMetrics, sumOf } from '../testing/prometheus.ts'
import { head, withLength, writeThenRead } from './helpers/write-then-read.ts'

const MAX_JSON = 1024 * 1024
const MAX_MEDIA = 6 * 1024 * 1024
const DRAIN_MAX = 16 * 1024 * 1024
const config = testConfig({
  RATE_LIMIT_PER_MINUTE: '0',
  UNKNOWN_TOKEN_MAX_PER_IP: '0',
  MAX_JSON_BYTES: String(MAX_JSON),
  MAX_MEDIA_BYTES: String(MAX_MEDIA),
  DRAIN_MAX_BYTES: String(DRAIN_MAX),
  DRAIN_TIMEOUT_MS: '1500',
})
const seeded = await seedToken(config)
const app: FastifyInstance = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as AddressInfo).port
t.teardown(() => app.close())

const REPEAT = 5
const base = (session: string) => `/ingest/${seeded.token}/test_session/${session}`
const json = { 'Content-Type': 'application/json; charset=utf-8' }
const jpeg = { 'Content-Type': 'image/jpeg', 'Content-Disposition': 'attachment; filename=x.jpg' }
const small = (session: string) => withLength('PUT', `${base(session)}/`, Buffer.from('{"state":"QUEUED"}'), json)
const metric = async (name: string, labels: Record<string, string>) => sumOf(parseMetrics(await app.metrics.metrics()), name, labels)
let n = 0
const id = (what: string) => `${what}-${n++}`

t.test(
  '413 over a JSON body: the client that writes first still reads the 413; the connection closes once the body has ended',
  async (t) => {
    // Fastify answers a JSON body over its limit with Connection: close; the gateway then reads the
    // rest of the body before closing (a lingering close), so nothing resets the connection.
    const big = Buffer.alloc(12 * 1024 * 1024, 0x61) // the 12 MB session
    const bigChunked = chunked(Buffer.alloc(3 * MAX_JSON, 0x61))
    for (const route of ['session', 'logs'] as const) {
      for (const framing of ['Content-Length', 'chunked'] as const) {
        for (let i = 0; i < REPEAT; i++) {
          const s = id(route)
          const path = route === 'session' ? `${base(s)}/` : `${base(s)}/logs/`
          const req =
            framing === 'chunked'
              ? Buffer.concat([head('PUT', path, { ...json, 'Transfer-Encoding': 'chunked' }), bigChunked])
              : withLength('PUT', path, big, json)
          const r = await writeThenRead(port, [req])
          const what = `${route}, ${framing} #${i}`
          t.equal(r.error, null, `${what}: no EPIPE/ECONNRESET`)
          t.ok(r.wroteAll, `${what}: the whole body was written`)
          t.same(
            r.responses.map((x) => x.status),
            [413],
            `${what}: the 413`,
          )
          t.equal(JSON.parse(r.responses[0]?.body ?? '{}').error, 'too_large')
          t.equal(r.responses[0]?.headers.connection, 'close')
          t.ok(r.closedByServer, `${what}: then the server closed the connection`)
        }
      }
    }
  },
)

t.test(
  '413 over a chunked photo (streamed towards S3, failed at the limit): seen, and the connection serves its next request',
  async (t) => {
    // The photo route pipes the body towards S3 and fails it at the limit: the request must stay
    // readable (not destroyed with the pipeline), or the connection is reset.
    const bigPhoto = fakeJpeg(MAX_MEDIA + 2 * 1024 * 1024)
    for (let i = 0; i < REPEAT; i++) {
      const s = id('chunked')
      const r = await writeThenRead(
        port,
        [head('PUT', `${base(s)}/media/raw/`, { ...jpeg, 'Transfer-Encoding': 'chunked' }), chunked(bigPhoto), small(id('after'))],
        { expect: 2 },
      )
      t.equal(r.error, null, `photo #${i}: no socket error`)
      t.same(
        r.responses.map((x) => x.status),
        [413, 201],
        `photo #${i}: 413, then the next request`,
      )
    }
  },
)

t.test('a photo over MAX_MEDIA_BYTES by Content-Length, and refusals before the body (403, 400): all seen by the client', async (t) => {
  const bigPhoto = fakeJpeg(MAX_MEDIA + 4 * 1024 * 1024)
  const body = Buffer.alloc(8 * 1024 * 1024, 0x61)
  for (let i = 0; i < REPEAT; i++) {
    const s = id('early')
    const cases: [string, Buffer, number][] = [
      ['photo over the limit', withLength('PUT', `${base(s)}/media/raw/`, bigPhoto, jpeg), 413],
      ['unknown token', withLength('PUT', `/ingest/rdt_nosuchtoken${i}/test_session/${s}/`, body, json), 403],
      ['invalid id', withLength('PUT', `${base('bad.id')}/media/raw/`, body, jpeg), 400],
    ]
    for (const [what, req, status] of cases) {
      const r = await writeThenRead(port, [req, small(id('next'))], { expect: 2 })
      t.equal(r.error, null, `${what} #${i}: no socket error`)
      t.same(
        r.responses.map((x) => x.status),
        [status, 201],
        `${what} #${i}: ${status}, then the next request`,
      )
    }
  }
})

t.test('Connection: close from the client: the answer, then the rest of the body is read before the connection closes', async (t) => {
  const body = Buffer.alloc(12 * 1024 * 1024, 0x61)
  for (let i = 0; i < REPEAT; i++) {
    const r = await writeThenRead(port, [withLength('PUT', `/ingest/rdt_nosuchtoken/test_session/${id('close')}/`, body, json, true)])
    t.equal(r.error, null, `#${i}: no socket error`)
    t.ok(r.wroteAll, `#${i}: every byte written`)
    t.same(
      r.responses.map((x) => x.status),
      [403],
      `#${i}: the 403`,
    )
    t.equal(r.responses[0]?.headers.connection, 'close')
    t.ok(r.closedByServer, `#${i}: then closed by the server`)
  }
})

t.test(
  'a duplicate 5 MB photo over a keep-alive connection: 409 is seen, and the next request on the connection is answered',
  async (t) => {
    const photo = fakeJpeg(5 * 1024 * 1024)
    const s = id('dup')
    const first = await writeThenRead(port, [withLength('PUT', `${base(s)}/media/raw/`, photo, jpeg)], { expect: 1 })
    t.same(
      first.responses.map((x) => x.status),
      [201],
      'the first upload is accepted',
    )
    for (let i = 0; i < REPEAT; i++) {
      // Raw socket: the duplicate, then a new session, written back to back before anything is read.
      const r = await writeThenRead(port, [withLength('PUT', `${base(s)}/media/raw/`, photo, jpeg), small(id('after-dup'))], { expect: 2 })
      t.equal(r.error, null, `raw #${i}: no socket error`)
      t.same(
        r.responses.map((x) => x.status),
        [409, 201],
        `raw #${i}: 409, then 201 on the same connection`,
      )
      t.not(r.responses[0]?.headers.connection, 'close', 'the connection is kept')
    }
    // node:http with a keep-alive agent of one socket: the next request goes on the same connection
    // (same local port; the agent's `reusedSocket` is not set for a request that waited for it).
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.teardown(() => agent.destroy())
    const put = (path: string, body: Buffer, headers: Record<string, string>) =>
      new Promise<{ status: number; localPort: number | undefined }>((resolve, reject) => {
        const req = request(
          { host: '127.0.0.1', port, method: 'PUT', path, agent, headers: { ...headers, 'content-length': String(body.length) } },
          (res) => {
            const localPort = res.socket.localPort
            res.resume()
            res.on('end', () => resolve({ status: res.statusCode ?? 0, localPort }))
          },
        )
        req.on('error', reject)
        req.end(body)
      })
    const statuses: string[] = []
    for (let i = 0; i < REPEAT; i++) {
      const dup = await put(`${base(s)}/media/raw/`, photo, { 'content-type': 'image/jpeg' })
      const next = await put(`${base(id('agent'))}/`, Buffer.from('{}'), { 'content-type': 'application/json' })
      statuses.push(`${dup.status}/${next.status}${next.localPort === dup.localPort ? ' same connection' : ''}`)
    }
    t.same(
      statuses,
      Array(REPEAT).fill('409/201 same connection'),
      'every duplicate is 409 and the next request goes on the same connection',
    )
  },
)

t.test(
  'drain bounds: a body declared over DRAIN_MAX_BYTES is not read, a trickle is cut at DRAIN_TIMEOUT_MS, a chunked flood at DRAIN_MAX_BYTES',
  async (t) => {
    const before = {
      notDrained: await metric('rdt_gateway_body_drains_total', { outcome: 'not_drained' }),
      timeout: await metric('rdt_gateway_body_drains_total', { outcome: 'timeout' }),
      tooLarge: await metric('rdt_gateway_body_drains_total', { outcome: 'too_large' }),
    }
    // Declared 1 GB: answered with Connection: close at once. Only the head and a little is sent.
    const declared = await writeThenRead(
      port,
      [head('PUT', `${base(id('huge'))}/`, { ...json, 'Content-Length': 1024 ** 3 }), Buffer.alloc(64 * 1024)],
      { timeoutMs: 10_000 },
    )
    t.same(
      declared.responses.map((x) => x.status),
      [413],
    )
    t.equal(declared.responses[0]?.headers.connection, 'close', 'the answer says close')
    t.ok(declared.closedByServer, 'and the server closed the connection')
    t.equal(await metric('rdt_gateway_body_drains_total', { outcome: 'not_drained' }), before.notDrained + 1)

    // A trickle after an early 403: cut once DRAIN_TIMEOUT_MS (1.5 s here) has passed.
    const trickle = await new Promise<{ ms: number; status: number | null }>((resolve) => {
      const started = Date.now()
      const s = connect(port, '127.0.0.1')
      let got = ''
      s.write(head('PUT', `/ingest/rdt_nosuchtoken/test_session/${id('trickle')}/`, { ...json, 'Content-Length': 1_000_000 }))
      // One byte every 100 ms: the behaviour under test is the time bound itself.
      const tick = setInterval(() => s.write('a'), 100)
      s.on('data', (c: Buffer) => (got += c.toString('latin1')))
      s.on('error', () => {})
      s.on('close', () => {
        clearInterval(tick)
        resolve({ ms: Date.now() - started, status: Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1]) || null })
      })
    })
    t.equal(trickle.status, 403, 'the answer was sent first')
    t.ok(trickle.ms >= 1400 && trickle.ms < 10_000, `the trickling connection was cut after ${trickle.ms} ms`)
    t.equal(await metric('rdt_gateway_body_drains_total', { outcome: 'timeout' }), before.timeout + 1)

    // Chunked, with no end in sight: cut once DRAIN_MAX_BYTES (16 MiB) more have been read.
    const flood = await writeThenRead(
      port,
      [
        head('PUT', `/ingest/rdt_nosuchtoken/test_session/${id('flood')}/`, { ...json, 'Transfer-Encoding': 'chunked' }),
        chunked(Buffer.alloc(40 * 1024 * 1024, 0x61), 1024 * 1024),
      ],
      {
        timeoutMs: 30_000,
      },
    )
    t.ok(flood.closedByServer || flood.error !== null, `the connection was cut (${flood.error ?? 'closed'})`)
    t.equal(await metric('rdt_gateway_body_drains_total', { outcome: 'too_large' }), before.tooLarge + 1)
    t.equal(await metric('rdt_gateway_draining_connections', {}), 0, 'no connection is left draining')
  },
)

t.test('every early answer is counted as a refusal by reason, and drains by outcome', async (t) => {
  const samples = parseMetrics(await app.metrics.metrics())
  t.ok(sumOf(samples, 'rdt_gateway_refusals_total', { reason: 'too_large', status: '413' }) >= 6 * REPEAT, 'the 413s')
  t.ok(sumOf(samples, 'rdt_gateway_refusals_total', { reason: 'forbidden', status: '403' }) >= REPEAT, 'the 403s')
  t.ok(sumOf(samples, 'rdt_gateway_body_drains_total', { outcome: 'completed' }) >= 6 * REPEAT, 'completed drains')
})
