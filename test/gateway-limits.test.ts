// One token must not take the service down, through a real gateway on real Redis:
// the per-workspace byte budget (checked in the claim script, with no round trip of its own) and
// the per-token cap on uploads in flight.
import t from 'tap'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { Redis } from 'ioredis'
import { buildGateway } from '../gateway/app.ts'
import { keys } from '../shared/keys.ts'
import { asRole, testConfig } from './helpers/env.ts'
import { seedToken } from '../testing/seed.ts'
import { waitFor } from '../testing/wait.ts'
import { chunked } from './helpers/hostile.ts'
import { fakeJpeg } from '../testing/media.ts'
import { parseMetrics, sumOf } from '../testing/prometheus.ts'
import { head, withLength, writeThenRead } from './helpers/write-then-read.ts'

const BUDGET = 512 * 1024
const MAX_IN_FLIGHT = 3
const config = testConfig({
  RATE_LIMIT_PER_MINUTE: '0',
  MAX_JSON_BYTES: String(128 * 1024),
  MAX_MEDIA_BYTES: String(256 * 1024),
  WORKSPACE_BYTES_PER_MINUTE: String(BUDGET),
  MAX_IN_FLIGHT_PER_TOKEN: String(MAX_IN_FLIGHT),
})
const k = keys(config.redisPrefix)
const app = await buildGateway({ config: asRole(config, 'gateway'), logger: false })
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as AddressInfo).port
const redis = new Redis(config.redisUrl)
t.teardown(async () => {
  await app.close()
  redis.disconnect()
})
const metric = async (name: string, labels: Record<string, string>) => sumOf(parseMetrics(await app.metrics.metrics()), name, labels)
const json = { 'content-type': 'application/json; charset=utf-8' }
/** A JSON object of exactly `size` bytes. */
const body = (size: number) => `{"pad":"${'a'.repeat(size - 10)}"}`
let n = 0
const id = (what: string) => `${what}-${n++}`

t.test('byte budget: a workspace may send one minute of its budget at once, then 429 byte_budget_exceeded with Retry-After', async (t) => {
  const spender = await seedToken(config)
  const other = await seedToken(config)
  const put = (token: string, size: number, route: 'session' | 'logs' = 'session') =>
    app.inject({
      method: 'PUT',
      url: `/ingest/${token}/test_session/${id('b')}/${route === 'logs' ? 'logs/' : ''}`,
      payload: body(size),
      headers: json,
    })
  // 100,000-byte bodies against 524,288 bytes a minute: five fit in the burst, the sixth does not.
  const codes: number[] = []
  for (let i = 0; i < 5; i++) codes.push((await put(spender.token, 100_000, i % 2 ? 'logs' : 'session')).statusCode)
  t.same(codes, [201, 201, 201, 201, 201], 'sessions and logs share the budget')
  const stateBefore = await redis.get(k.workspaceBytes(spender.workspaceId))
  const refused = await put(spender.token, 100_000)
  t.equal(refused.statusCode, 429, refused.body)
  t.equal(JSON.parse(refused.body).error, 'byte_budget_exceeded')
  // The sixth needs 100,000 more bytes of room: about 8.7 s at 524,288 bytes a minute.
  const retryAfter = Number(refused.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 12, `Retry-After ${retryAfter} s: until there is room for this body`)
  t.equal(await redis.get(k.workspaceBytes(spender.workspaceId)), stateBefore, 'a refused request is charged nothing')
  t.equal(
    await redis.keys(`${k.idempotency('s', spender.workspaceId, '*')}`).then((x) => x.length),
    3,
    'and claims nothing (3 sessions were accepted)',
  )
  t.equal((await put(spender.token, 2_000)).statusCode, 201, 'a small body still fits in what is left')
  t.equal((await put(other.token, 100_000)).statusCode, 201, 'another workspace has its own budget')
  t.equal(
    await metric('rdt_gateway_refusals_total', { reason: 'byte_budget_exceeded', status: '429' }),
    1,
    'counted as a refusal by reason',
  )
})

t.test('byte budget, photos: the declared length is charged before a byte is read; a chunked photo is charged once received', async (t) => {
  const tok = await seedToken(config)
  const photoPath = (s: string) => `/ingest/${tok.token}/test_session/${s}/media/raw/`
  const jpeg = { 'Content-Type': 'image/jpeg' }
  const budgetKey = k.workspaceBytes(tok.workspaceId)
  // Chunked: the claim only checks that the budget is not spent; the bytes are charged after.
  const photo = fakeJpeg(200_000)
  const r1 = await writeThenRead(port, [head('PUT', photoPath(id('c')), { ...jpeg, 'Transfer-Encoding': 'chunked' }), chunked(photo)], {
    expect: 1,
  })
  t.same(
    r1.responses.map((x) => x.status),
    [201],
  )
  const charged = Number(await redis.get(budgetKey)) - Date.now()
  // 200,000 bytes are 22.9 s of a 524,288-bytes-a-minute budget (Redis's clock; a little slack either way).
  t.ok(charged > 20_000 && charged < 23_500, `the chunked photo was charged after its upload (${Math.round(charged)} ms of budget)`)
  // With a Content-Length: 2 x 200,000 more would be over a minute's budget; the second is refused
  // up front, and the client that writes first sees the 429.
  const r2 = await writeThenRead(port, [withLength('PUT', photoPath(id('l')), photo, jpeg)], { expect: 1 })
  t.same(
    r2.responses.map((x) => x.status),
    [201],
    'within the budget',
  )
  const r3 = await writeThenRead(port, [withLength('PUT', photoPath(id('l')), photo, jpeg)], { expect: 1 })
  t.equal(r3.error, null)
  t.same(
    r3.responses.map((x) => x.status),
    [429],
    'over it: refused before the body is read',
  )
  t.equal(JSON.parse(r3.responses[0]?.body ?? '{}').error, 'byte_budget_exceeded')
  // A chunked photo is only checked for a budget already overdrawn: this one passes (its size is
  // unknown up front), is charged once received, and overdraws the budget by its size...
  const r4 = await writeThenRead(port, [head('PUT', photoPath(id('c')), { ...jpeg, 'Transfer-Encoding': 'chunked' }), chunked(photo)], {
    expect: 1,
  })
  t.same(
    r4.responses.map((x) => x.status),
    [201],
    'a chunked photo within what is left',
  )
  t.ok(Number(await redis.get(budgetKey)) - Date.now() > 60_000, 'the budget is now overdrawn')
  // ...so the next one, chunked or not, is refused before its body.
  const r5 = await writeThenRead(
    port,
    [head('PUT', photoPath(id('c')), { ...jpeg, 'Transfer-Encoding': 'chunked' }), chunked(fakeJpeg(1000))],
    { expect: 1 },
  )
  t.same(
    r5.responses.map((x) => x.status),
    [429],
    'a chunked photo is refused while the budget is overdrawn',
  )
  const r6 = await app.inject({ method: 'PUT', url: `/ingest/${tok.token}/test_session/${id('s')}/`, payload: '{}', headers: json })
  t.equal(r6.statusCode, 429, "and so is a 2-byte session: the budget is the workspace's")
})

/** Opens an upload and sends part of its body, then holds it: an upload in flight. */
function holdUpload(
  path: string,
  headers: Record<string, string | number>,
  part: Buffer,
): Promise<{ socket: Socket; answered: Promise<string> }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let got = ''
    const answered = new Promise<string>((done) => {
      socket.on('data', (c: Buffer) => {
        got += c.toString('latin1')
        if (got.includes('\r\n\r\n')) done(got)
      })
      socket.on('close', () => done(got))
    })
    socket.on('error', () => {})
    socket.write(Buffer.concat([head('PUT', path, headers), part]), () => resolve({ socket, answered }))
  })
}

t.test(
  'uploads in flight: past MAX_IN_FLIGHT_PER_TOKEN a token gets 429 too_many_in_flight; other tokens are served; a slot frees when an upload ends',
  async (t) => {
    const busy = await seedToken(config)
    const calm = await seedToken(config)
    const held = [
      await holdUpload(
        `/ingest/${busy.token}/test_session/${id('h')}/media/raw/`,
        { 'Content-Type': 'image/jpeg', 'Content-Length': 200_000 },
        fakeJpeg(1000),
      ),
      await holdUpload(
        `/ingest/${busy.token}/test_session/${id('h')}/media/raw/`,
        { 'Content-Type': 'image/jpeg', 'Transfer-Encoding': 'chunked' },
        Buffer.from('3e8\r\n' + 'x'.repeat(1000) + '\r\n'),
      ),
      await holdUpload(`/ingest/${busy.token}/test_session/${id('h')}/`, { ...json, 'Content-Length': 100_000 }, Buffer.from('{"pad":"')),
    ]
    t.teardown(() => held.forEach((h) => h.socket.destroy()))
    // Polls on the in-flight gauge: a held upload is counted (or released) with no event.
    await waitFor(async () => (await metric('rdt_gateway_uploads_in_flight', {})) === MAX_IN_FLIGHT, {
      what: `${MAX_IN_FLIGHT} uploads in flight`,
    })

    const refused = await app.inject({ method: 'PUT', url: `/ingest/${busy.token}/test_session/${id('x')}/`, payload: '{}', headers: json })
    t.equal(refused.statusCode, 429, refused.body)
    t.equal(JSON.parse(refused.body).error, 'too_many_in_flight')
    t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
    const photo = await writeThenRead(
      port,
      [withLength('PUT', `/ingest/${busy.token}/test_session/${id('x')}/media/raw/`, fakeJpeg(150_000), { 'Content-Type': 'image/jpeg' })],
      { expect: 1 },
    )
    t.same(
      photo.responses.map((x) => x.status),
      [429],
      'a photo too, answered before its body is read and seen by the client',
    )
    for (let i = 0; i < 5; i++) {
      t.equal(
        (await app.inject({ method: 'PUT', url: `/ingest/${calm.token}/test_session/${id('calm')}/`, payload: '{}', headers: json }))
          .statusCode,
        201,
        `another token is served (#${i})`,
      )
    }
    t.equal(await metric('rdt_gateway_refusals_total', { reason: 'too_many_in_flight', status: '429' }), 2, 'counted by reason')

    // One held upload goes away: its slot frees, and the token is served again.
    held[0]!.socket.destroy()
    await waitFor(async () => (await metric('rdt_gateway_uploads_in_flight', {})) === MAX_IN_FLIGHT - 1, { what: 'the slot to free' })
    t.equal(
      (await app.inject({ method: 'PUT', url: `/ingest/${busy.token}/test_session/${id('x')}/`, payload: '{}', headers: json })).statusCode,
      201,
      'a freed slot is used',
    )
    // Another finishes its body normally: answered 201, and its slot frees too.
    const rest = Buffer.from('a'.repeat(100_000 - 10) + '"}')
    held[2]!.socket.write(rest)
    t.match(await held[2]!.answered, /^HTTP\/1\.1 201/, 'the held session completes')
    await waitFor(async () => (await metric('rdt_gateway_uploads_in_flight', {})) === 1, { what: 'only the chunked photo left in flight' })
  },
)
