// Explicit hostile inputs, each sent over real HTTP (raw sockets where Node's own
// client would refuse to send it) to a real gateway with a real worker behind it. Every case
// checks the status AND what is stored; the last test checks that nothing crashed, stuck or
// touched another workspace.
import t from 'tap'
import { gzipSync } from 'node:zlib'
import type { Document } from 'mongodb'
import { openMedia } from '../admin/data/media.ts'
import { decodeKey } from '../shared/json-storage.ts'
import { jobIds, keys, objectKeys } from '../shared/keys.ts'
import { fakeJpeg, readObject } from './helpers/media.ts'
import {
  buildRawRequest,
  chunked,
  drain,
  errorLines,
  FIXTURES,
  knownGoodRoundTrip,
  leftoverSpools,
  parseResponses,
  paths,
  randomId,
  rawSend,
  seedVictim,
  send,
  sha256,
  snapshotWorkspace,
  startHostileStack,
  waitFor,
} from './helpers/hostile.ts'

const stack = await startHostileStack(t)
await seedVictim(stack)
const victimBefore = await snapshotWorkspace(stack, stack.victim.workspaceId)
const ws = stack.attacker.workspaceId
const token = stack.attacker.token
const MAX_JSON = stack.config.maxJsonBytes
const MAX_MEDIA = stack.config.maxMediaBytes
const k = keys(stack.config.redisPrefix)

const p = (session: string) => paths(token, session)
const col = (name: string) => stack.db.collection(name)
const storedSession = (session: string) => waitFor(() => col('test_sessions').findOne({ workspace_id: ws, session_id: session }), { timeoutMs: 60_000, what: `session ${session} to be stored` })
const storedBatch = (session: string) => waitFor(() => col('test_session_log_batches').findOne({ workspace_id: ws, session_id: session }), { timeoutMs: 60_000, what: `logs of ${session} to be stored` })
const storedMedia = (session: string, media: string) =>
  waitFor(() => col('test_session_media').findOne({ workspace_id: ws, session_id: session, media_id: media }), { timeoutMs: 60_000, what: `media ${session}/${media} to be stored` })
/** Nothing queued for this session in any queue, and no staged photo under it. */
async function nothingFor(session: string): Promise<string[]> {
  const found: string[] = []
  for (const q of ['sessions', 'logs', 'media'] as const) {
    for (const j of await stack.queues[q].getJobs(['waiting', 'active', 'delayed', 'completed', 'failed'])) if (j?.data?.session_id === session) found.push(`${q} job ${j.id}`)
  }
  for await (const o of stack.s3.listObjectsV2(stack.config.s3.bucket, `staging/${ws}/${session}/`, true) as AsyncIterable<{ name?: string }>) found.push(`staged ${o.name}`)
  return found
}

t.test('keys $where, a.b, __proto__ and constructor are data, stored under the documented encoding', async (t) => {
  const id = randomId('keys-')
  const body =
    '{"state":"QUEUED","state":"RUNNING","$where":"sleep(1000)","a.b":{"$gt":""},"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},' +
    '"configuration":{"flags":{"$where":"TRUE","a.b":"FALSE","__proto__":"TRUE"}},"result":{"results":{"constructor":"mal_pf_pos","$ne":null}}}'
  const res = await send(stack.port, { path: p(id).session, body })
  t.equal(res.status, 201, res.body)
  const doc = await storedSession(id)
  t.equal(doc.raw_body, body, 'raw_body is the exact text, duplicate keys and all')
  t.equal(doc.state, 'RUNNING', 'a duplicate key: the last one wins, as in every JSON parser')
  const extra = doc.extra as Record<string, unknown>
  t.same(Object.keys(extra).sort(), ['%24where', '__proto__', 'a%2Eb', 'constructor'].sort())
  t.same(extra['a%2Eb'], { '%24gt': '' }, 'nested keys are encoded too')
  t.ok(Object.hasOwn(extra, '__proto__'), '__proto__ is an own key')
  t.same(extra.__proto__, { polluted: true })
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'and no prototype was polluted')
  t.same((doc.configuration as Document).flags, Object.assign(Object.create(null), { '%24where': 'TRUE', 'a%2Eb': 'FALSE', ['__proto__']: 'TRUE' }))
  t.same(Object.keys((doc.result as Document).results as object).map(decodeKey).sort(), ['$ne', 'constructor'])

  const logsBody = '{"entries":[{"timestamp":"2021-01-25T11:02:41.118+00:00","tag":"t","message":"m","json":{"$where":"1","a.b":2,"__proto__":3,"constructor":4}}]}'
  t.equal((await send(stack.port, { path: p(id).logs, body: logsBody })).status, 201)
  await storedBatch(id)
  const entry = await waitFor(() => col('test_session_logs').findOne({ workspace_id: ws, session_id: id }))
  t.same(Object.keys(entry.json as object).sort(), ['%24where', '__proto__', 'a%2Eb', 'constructor'].sort())
  t.equal(entry.validation.ok, true)
})

t.test('nesting deeper than 100 levels, and 10,000 levels, is stored as JSON text below level 32', async (t) => {
  for (const depth of [101, 10_000]) {
    const id = randomId(`deep${depth}-`)
    const deepArr = '['.repeat(depth) + '"x"' + ']'.repeat(depth)
    const deepObj = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
    const body = `{"state":"QUEUED","deep_array":${deepArr},"deep_object":${deepObj},"metrics":{"data":${deepObj}}}`
    const res = await send(stack.port, { path: p(id).session, body })
    t.equal(res.status, 201, `depth ${depth}: ${res.body}`)
    const doc = await storedSession(id)
    t.equal(doc.raw_body, body)
    t.equal(doc.raw_sha256, sha256(body))
    t.notOk((doc.validation.errors as { path: string }[]).some((e) => e.path === 'storage_fallback'), 'the normalised document went in, not the fallback')
    const notes = doc.storage_notes as { path: string; rule: string }[]
    t.ok(notes.some((n) => n.path === '/deep_array/0' && n.rule === 'nested_array_as_json'), 'an array directly in an array becomes JSON text')
    t.ok(notes.some((n) => n.path.startsWith('/metrics/data/a/') && n.rule === 'too_deep_as_json'), 'an object past level 32 becomes JSON text')
    // Walk the stored object down to where it turns into text.
    let node: unknown = (doc.extra as Document).deep_object
    let levels = 0
    while (typeof node === 'object' && node !== null) {
      node = (node as Document).a
      levels++
    }
    t.equal(typeof node, 'string', 'the rest is kept as JSON text')
    t.ok(levels <= 32, `kept as objects for ${levels} levels`)
    t.doesNotThrow(() => JSON.parse(node as string), 'and it is valid JSON')

    const logs = `{"entries":[{"timestamp":"2021-01-25T11:02:41Z","json":${deepObj}}, ${deepArr}]}`
    t.equal((await send(stack.port, { path: p(id).logs, body: logs })).status, 201)
    await waitFor(async () => (await col('test_session_logs').countDocuments({ workspace_id: ws, session_id: id })) === 2, { timeoutMs: 60_000, what: 'both deep entries' })
    const bare = await col('test_session_logs').findOne({ workspace_id: ws, session_id: id, batch_index: 1 })
    t.equal(typeof (bare?.value as unknown[])[0], 'string', 'a non-object entry (an array of arrays) is kept, its inner array as JSON text')
  }
  // Deeper than any stack: 2.5 million levels, inside the 5 MiB limit.
  const id = randomId('deepest-')
  const depth = Math.floor((MAX_JSON - 100) / 2)
  const body = `{"x":${'['.repeat(depth)}${']'.repeat(depth)}}`
  const res = await send(stack.port, { path: p(id).session, body })
  t.equal(res.status, 201, `${depth} levels`)
  const doc = await storedSession(id)
  t.equal(doc.raw_sha256, sha256(body), `${depth} levels stored`)
})

t.test('100,000-element arrays: in a session, and in a log entry (100,000 entries: hostile-bulk.test.ts)', async (t) => {
  const id = randomId('big-')
  const big = Array.from({ length: 100_000 }, (_, i) => i)
  const session = { ...(JSON.parse(FIXTURES.sessionRdtoolkit) as object), big, metrics: { data: big } }
  t.equal((await send(stack.port, { path: p(id).session, body: JSON.stringify(session) })).status, 201)
  const doc = await storedSession(id)
  t.same((doc.extra as Document).big, big, 'stored as an array of 100,000 numbers')
  t.same((doc.metrics as Document).data, big)
  t.ok((doc.validation.errors as { path: string }[]).some((e) => e.path === '/metrics/data'), 'and flagged where the schema wants a map')

  t.equal((await send(stack.port, { path: p(id).logs, body: JSON.stringify({ entries: [{ timestamp: '2021-01-25T11:02:41Z', tag: 't', message: 'm', json: { values: big } }] }) })).status, 201)
  await storedBatch(id)
  const entry = await waitFor(() => col('test_session_logs').findOne({ workspace_id: ws, session_id: id }))
  t.equal(((entry.json as Document).values as number[]).length, 100_000)
})

t.test('NUL characters in values and keys; raw NUL bytes', async (t) => {
  const id = randomId('nul-')
  const body = '{"state":"QUE\\u0000UED","a\\u0000b":"x\\u0000y","configuration":{"flags":{"\\u0000":"TRUE"}}}'
  t.equal((await send(stack.port, { path: p(id).session, body })).status, 201)
  const doc = await storedSession(id)
  t.equal(doc.state, 'QUE\u0000UED', 'a NUL inside a value is kept')
  t.same((doc.extra as Document)['a%00b'], 'x\u0000y', 'a NUL in a key is encoded as %00')
  t.same(Object.keys((doc.configuration as Document).flags as object), ['%00'])

  const rawNul = Buffer.from('{"state":"QUEUED"}\u0000', 'utf8')
  const res = await send(stack.port, { path: p(randomId('nulraw-')).session, body: rawNul })
  t.equal(res.status, 400, 'a NUL byte outside a string is not JSON')
  const inString = Buffer.from('{"state":"QUE\u0000UED"}', 'utf8')
  t.equal((await send(stack.port, { path: p(randomId('nulraw-')).session, body: inString })).status, 400, 'nor is an unescaped NUL in a string')
})

t.test('invalid UTF-8: accepted, hashed over the exact bytes, flagged; a byte-order mark is ignored', async (t) => {
  const id = randomId('utf8-')
  // 0xff, an overlong '/', a CESU-8 surrogate, a truncated 3-byte sequence.
  const bytes = Buffer.concat([Buffer.from('{"state":"QUEUED","note":"a'), Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xe2, 0x82]), Buffer.from('z"}')])
  const res = await send(stack.port, { path: p(id).session, body: bytes })
  t.equal(res.status, 201)
  const doc = await storedSession(id)
  t.equal(doc.raw_sha256, sha256(bytes), 'raw_sha256 is over the bytes received')
  t.match(doc.raw_body, /^\{"state":"QUEUED","note":"a\ufffd+z"\}$/, 'raw_body has U+FFFD where the invalid bytes were')
  const flagged = (d: Document) => (d.validation.errors as { path: string; message: string }[]).some((e) => e.path === 'raw_body' && /not valid UTF-8/.test(e.message))
  t.ok(flagged(doc), 'and the record says so')
  t.match((doc.extra as Document).note, /^a\ufffd+z$/)

  t.equal((await send(stack.port, { path: p(id).logs, body: Buffer.concat([Buffer.from('{"entries":[{"tag":"'), Buffer.from([0xfe]), Buffer.from('"}]}')]) })).status, 201)
  const batch = await storedBatch(id)
  t.ok(flagged(batch), 'the logs batch too')

  const valid = randomId('utf8ok-')
  t.equal((await send(stack.port, { path: p(valid).session, body: FIXTURES.sessionRdtoolkit })).status, 201)
  t.notOk(((await storedSession(valid)).validation.errors as { path: string }[]).some((e) => e.path === 'raw_body'), 'valid UTF-8 is not flagged')

  const bom = randomId('bom-')
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(FIXTURES.sessionRdtoolkit)])
  t.equal((await send(stack.port, { path: p(bom).session, body: withBom })).status, 201, 'a leading byte-order mark is not a reason to refuse')
  const bomDoc = await storedSession(bom)
  t.equal(bomDoc.raw_body, FIXTURES.sessionRdtoolkit)
  t.equal(bomDoc.raw_sha256, sha256(withBom))

  // The worst case for size: each invalid byte is 3 bytes of text (U+FFFD). A body whose text
  // would pass the limit is refused (it was a 201 whose job then failed: even the fallback
  // document, raw_body alone, was over MongoDB's limit); one within it is stored.
  const over = randomId('utf8big-')
  const big = Buffer.concat([Buffer.from('{"state":"QUEUED","x":"'), Buffer.alloc(MAX_JSON - 40, 0xff), Buffer.from('"}')])
  t.equal((await send(stack.port, { path: p(over).session, body: big })).status, 413, 'invalid bytes whose text passes the limit: 413')
  t.same(await nothingFor(over), [], 'nothing queued')
  const within = randomId('utf8third-')
  const third = Buffer.concat([Buffer.from('{"state":"QUEUED","x":"'), Buffer.alloc(Math.floor(MAX_JSON / 3) - 40, 0xff), Buffer.from('"}')])
  t.equal((await send(stack.port, { path: p(within).session, body: third })).status, 201)
  const thirdDoc = await storedSession(within)
  t.equal(thirdDoc.raw_sha256, sha256(third))
  t.equal((thirdDoc.raw_body as string).length, third.length, 'one character in raw_body per byte received')
  t.ok(flagged(thirdDoc), 'flagged')
  t.equal((await send(stack.port, { path: p(within).logs, body: third })).status, 201, 'the same body as logs')
  t.ok(flagged(await storedBatch(within)))
})

t.test('Content-Length that does not match the body (raw sockets)', async (t) => {
  // Shorter: the body is what Content-Length says; the rest is read as a next request and refused.
  const id = randomId('clshort-')
  const first = '{"state":"QUEUED"}'
  const head = `PUT ${p(id).session} HTTP/1.1\r\nHost: x\r\nContent-Length: ${first.length}\r\n\r\n`
  // The trailing bytes are parsed as a pipelined request at once; Node refuses them with 400 and
  // closes the socket, possibly before the first answer is written. Either way the first body is
  // the declared bytes, and the device's retry gets 201 (or 409 once the first was stored).
  const res = await rawSend(stack.port, Buffer.from(head + first + 'GARBAGE THAT IS NOT A REQUEST\r\n\r\n'), { timeoutMs: 5000 })
  const answers = parseResponses(res.raw).map((r) => r.status)
  t.ok(answers.length > 0 && answers.every((s) => s === 201 || s === 400), `answers: ${answers.join(', ')}`)
  t.ok([201, 409].includes((await send(stack.port, { path: p(id).session, body: first })).status ?? 0), 'a retry is accepted')
  t.equal((await storedSession(id)).raw_sha256, sha256(first), 'the stored body is the declared bytes')

  const mid = randomId('clshortm-')
  const photo = fakeJpeg(40_000)
  const mres = await rawSend(stack.port, Buffer.concat([Buffer.from(`PUT ${p(mid).media('raw')} HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 30000\r\n\r\n`), photo]), { timeoutMs: 5000 })
  const mAnswers = parseResponses(mres.raw).map((r) => r.status)
  t.ok(mAnswers.every((s) => s === 201 || s === 400), `media answers: ${mAnswers.join(', ') || 'none'}`)
  const mRetry = await waitFor(async () => {
    const r = await send(stack.port, { path: p(mid).media('raw'), headers: [['Content-Type', 'image/jpeg']], body: photo.subarray(0, 30_000) })
    return r.status === 503 ? null : r
  })
  t.ok(mRetry.status === 201 || mRetry.status === 409, `media retry: ${mRetry.status}`)
  const m = await storedMedia(mid, 'raw')
  t.equal(m.size, 30_000)
  t.equal(m.sha256, sha256(photo.subarray(0, 30_000)))

  // Longer: the body ends early (the client half-closes or goes away): nothing is stored, and the
  // device's retry with the full body is accepted, not refused as a duplicate.
  for (const endpoint of ['session', 'logs', 'media'] as const) {
    for (const how of ['half-close', 'vanish'] as const) {
      const sid = randomId(`cllong-${endpoint}-`)
      const path = endpoint === 'session' ? p(sid).session : endpoint === 'logs' ? p(sid).logs : p(sid).media('raw')
      const body = endpoint === 'media' ? fakeJpeg(50_000) : Buffer.from(FIXTURES.sessionRdtoolkit)
      const data = buildRawRequest({ path, headers: [['Content-Length', String(body.length + 1000)]], noContentLength: true, body })
      const r = await rawSend(stack.port, data, { endAfterWrite: how === 'half-close', timeoutMs: how === 'vanish' ? 500 : 5000 })
      t.ok(r.status === null || (r.status >= 400 && r.status < 500), `${endpoint}, ${how}: ${r.status ?? 'no answer'}`)
      const retry = await waitFor(
        async () => {
          const again = await send(stack.port, { path, body })
          // 503 only while the dead request's claim is still being cleaned up.
          return again.status === 503 ? null : again
        },
        { timeoutMs: 20_000, what: 'the retry to be answered' },
      )
      t.equal(retry.status, 201, `${endpoint}, ${how}: the retry is accepted`)
      const stored = endpoint === 'session' ? await storedSession(sid) : endpoint === 'logs' ? await storedBatch(sid) : await storedMedia(sid, 'raw')
      t.equal(stored.raw_sha256 ?? stored.sha256, sha256(body), 'and what is stored is the full body')
    }
  }
  const health = await send(stack.port, { method: 'GET', path: '/healthz' })
  t.equal(health.status, 200)
})

t.test('Transfer-Encoding: chunked over the limit is 413, leaves nothing behind, and the gateway stays healthy', async (t) => {
  const id = randomId('chunk-')
  const bigJson = Buffer.concat([Buffer.from('{"state":"QUEUED","pad":"'), Buffer.alloc(MAX_JSON, 0x61), Buffer.from('"}')])
  const r1 = await rawSend(stack.port, buildRawRequest({ path: p(id).session, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson) }), { timeoutMs: 20_000 })
  t.equal(r1.status, 413, 'session')
  const r2 = await rawSend(stack.port, buildRawRequest({ path: p(id).logs, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson) }), { timeoutMs: 20_000 })
  t.equal(r2.status, 413, 'logs')
  const bigPhoto = fakeJpeg(MAX_MEDIA + 100_000)
  const r3 = await rawSend(stack.port, buildRawRequest({ path: p(id).media('raw'), headers: [['Transfer-Encoding', 'chunked'], ['Content-Type', 'image/jpeg']], rawBody: chunked(bigPhoto) }), {
    timeoutMs: 20_000,
  })
  t.equal(r3.status, 413, 'media')
  t.same(await nothingFor(id), [], 'no job, no staged object')
  t.same(await leftoverSpools(stack), [], 'the spool file is removed')

  // Over a keep-alive connection: the same socket, then /healthz on it if it stayed open.
  const keep = await rawSend(
    stack.port,
    Buffer.concat([
      buildRawRequest({ path: p(id).session, headers: [['Transfer-Encoding', 'chunked']], rawBody: chunked(bigJson), keepAlive: true }),
      buildRawRequest({ method: 'GET', path: '/healthz' }),
    ]),
    { timeoutMs: 20_000 },
  )
  const statuses = parseResponses(keep.raw).map((r) => r.status)
  t.equal(statuses[0], 413)
  t.ok(statuses.length === 1 || statuses[1] === 200, `a second request on the connection got ${statuses[1] ?? 'a closed connection'}`)
  t.equal((await send(stack.port, { method: 'GET', path: '/healthz' })).status, 200, 'a new connection is served')

  // Within the limit, chunked photos are spooled to disk and the spool is removed after.
  const ok = fakeJpeg(300_000)
  const r4 = await rawSend(stack.port, buildRawRequest({ path: p(id).media('cropped'), headers: [['Transfer-Encoding', 'chunked'], ['Content-Type', 'image/jpeg']], rawBody: chunked(ok, 7777) }))
  t.equal(r4.status, 201)
  t.equal((await storedMedia(id, 'cropped')).sha256, sha256(ok))
  t.same(await leftoverSpools(stack), [])
})

t.test('a wrong, missing or malformed Content-Type is accepted and stored as declared', async (t) => {
  for (const [i, ct] of [undefined, 'text/plain', 'image/jpeg', 'application/x-www-form-urlencoded', 'garbage', ';;;', 'application/json; charset=latin1'].entries()) {
    const id = randomId(`ct${i}-`)
    const headers: [string, string][] = ct === undefined ? [] : [['Content-Type', ct]]
    t.equal((await send(stack.port, { path: p(id).session, headers, body: FIXTURES.sessionRdtoolkit })).status, 201, `session, ${ct ?? 'none'}`)
    t.equal((await send(stack.port, { path: p(id).logs, headers, body: FIXTURES.logsRdtoolkit })).status, 201, `logs, ${ct ?? 'none'}`)
    const photo = fakeJpeg(5000)
    t.equal((await send(stack.port, { path: p(id).media('raw'), headers, body: photo })).status, 201, `media, ${ct ?? 'none'}`)
    t.equal((await storedSession(id)).raw_sha256, sha256(FIXTURES.sessionRdtoolkit))
    await storedBatch(id)
    const m = await storedMedia(id, 'raw')
    t.equal(m.content_type, ct ?? null, 'the declared type is kept as metadata')
    t.equal(m.sniffed_type, 'image/jpeg', 'the stored type comes from the bytes')
  }
})

t.test('Content-Encoding: gzip is inflated with a cap (a bomb is 413); other codings are 415', async (t) => {
  const id = randomId('gz-')
  const gz = gzipSync(FIXTURES.sessionRdtoolkit)
  t.equal((await send(stack.port, { path: p(id).session, headers: [['Content-Encoding', 'gzip']], body: gz })).status, 201)
  const doc = await storedSession(id)
  t.equal(doc.raw_body, FIXTURES.sessionRdtoolkit, 'stored inflated')
  t.equal(doc.raw_sha256, sha256(FIXTURES.sessionRdtoolkit), 'the hash is of the inflated body, so a replay without gzip is the same record')
  t.equal((await send(stack.port, { path: p(id).session, body: FIXTURES.sessionRdtoolkit })).status, 409)
  t.equal((await send(stack.port, { path: p(id).logs, headers: [['Content-Encoding', 'x-gzip']], body: gzipSync(FIXTURES.logsRdtoolkit) })).status, 201)
  t.equal((await storedBatch(id)).sha256, sha256(FIXTURES.logsRdtoolkit))

  // 64 MiB of JSON whitespace in 64 KiB of gzip: refused at the cap, not inflated.
  const bomb = gzipSync(Buffer.concat([Buffer.from('{"a":'), Buffer.alloc(64 * 1024 * 1024, 0x20), Buffer.from('1}')]), { level: 9 })
  t.ok(bomb.length < 200_000, `bomb is ${bomb.length} bytes`)
  const bombId = randomId('bomb-')
  const rss = process.memoryUsage().rss
  t.equal((await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'gzip']], body: bomb })).status, 413)
  t.ok(process.memoryUsage().rss - rss < 48 * 1024 * 1024, 'the bomb was not inflated in full')
  t.equal((await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'gzip']], body: Buffer.from('not gzip at all') })).status, 400, 'corrupt gzip')
  for (const coding of ['deflate', 'br', 'compress', 'zstd', 'gzip, gzip', 'identity, gzip']) {
    t.equal((await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', coding]], body: gz })).status, 415, `session, ${coding}`)
  }
  t.equal((await send(stack.port, { path: p(bombId).media('raw'), headers: [['Content-Encoding', 'gzip']], body: gzipSync(fakeJpeg(1000)) })).status, 415, 'media, gzip')
  t.equal((await send(stack.port, { path: p(bombId).session, headers: [['Content-Encoding', 'identity']], body: FIXTURES.sessionRdtoolkit })).status, 201, 'identity is fine')
  await storedSession(bombId)
  t.same((await nothingFor(bombId)).filter((x) => !x.startsWith('sessions job')), [], 'nothing else was queued or staged')
})

t.test('Content-Disposition: path tricks, filename*, very long names, control characters', async (t) => {
  const id = randomId('cd-')
  const cases: [string, string | null][] = [
    ['attachment; filename=../../etc/passwd', 'passwd'],
    ['attachment; filename="..\\\\..\\\\windows\\\\win.ini"', 'win.ini'],
    ["attachment; filename*=UTF-8''%2e%2e%2f%2e%2e%2fevil.jpg", 'evil.jpg'],
    ["attachment; filename=plain.jpg; filename*=UTF-8''%E2%9C%93%20ok.jpg", '✓ ok.jpg'],
    ["attachment; filename*=UTF-8''%01%1b%5B31mred%7F%C2%85.jpg", '[31mred.jpg'],
    ["attachment; filename*=UTF-8''..", null],
    ['attachment; filename="."', null],
    [`attachment; filename=${'n'.repeat(300)}.jpg`, 'n'.repeat(255)],
    [`attachment; filename=${'x'.repeat(5000)}`, null],
    ["attachment; filename*=bogus''x.jpg", null],
    ['attachment; filename="/"', null],
    ['attachment', null],
    ['', null],
  ]
  for (const [i, [cd, want]] of cases.entries()) {
    const media = `m${i}`
    const res = await send(stack.port, { path: p(id).media(media), headers: [['Content-Type', 'image/jpeg'], ['Content-Disposition', cd]], body: fakeJpeg(2000) })
    t.equal(res.status, 201, cd.slice(0, 80))
    const doc = await storedMedia(id, media)
    t.equal(doc.filename, want, `${cd.slice(0, 60)} -> ${String(want).slice(0, 40)}`)
    t.equal(doc.key, objectKeys.final(ws, id, media), 'the object key is built from the ids only')
  }
  // A raw control character in a header is refused by the HTTP parser itself: nothing claimed.
  const ctl = await send(stack.port, { path: p(id).media('ctl'), headers: [['Content-Disposition', 'attachment; filename=a\u0001b.jpg']], body: fakeJpeg(1000) })
  t.equal(ctl.status, 400)
  t.equal(await stack.redis.exists(k.idempotency('m', ws, id, 'ctl')), 0, 'no idempotency key was claimed')

  // The longest filename and Content-Type, both non-ASCII: the staged object's metadata must still
  // fit S3's 2 KB (this was a 500: MetadataTooLarge), and still decode for the sweeper.
  const longName = 'é'.repeat(300) + '.jpg'
  const longType = 'image/' + '\u00e9'.repeat(250)
  const res = await send(stack.port, {
    path: p(id).media('long'),
    headers: [
      ['Content-Type', Buffer.from(longType, 'latin1').toString('latin1')],
      ['Content-Disposition', `attachment; filename*=UTF-8''${encodeURIComponent(longName)}`],
    ],
    body: fakeJpeg(3000),
  })
  t.equal(res.status, 201, res.body)
  const doc = await storedMedia(id, 'long')
  t.equal(doc.filename, [...longName].slice(0, 255).join(''), 'the full (255-character) name is in the document')
  t.equal(doc.content_type, longType)
})

t.test('HTML and SVG sent as image/jpeg are stored as application/octet-stream and served only as attachments', async (t) => {
  const id = randomId('html-')
  const bodies = {
    html: Buffer.from('<!doctype html><html><script>alert(document.cookie)</script></html>'),
    svg: Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'),
    bomhtml: Buffer.from('\ufeff<html><body onload=alert(1)>', 'utf8'),
  }
  for (const [media, bytes] of Object.entries(bodies)) {
    const res = await send(stack.port, { path: p(id).media(media), headers: [['Content-Type', 'image/jpeg'], ['Content-Disposition', `attachment; filename=${media}.jpg`]], body: bytes })
    t.equal(res.status, 201)
    const doc = await storedMedia(id, media)
    t.match(doc, { content_type: 'image/jpeg', sniffed_type: 'application/octet-stream', sha256: sha256(bytes) })
    const stat = await stack.s3.statObject(stack.config.s3.bucket, doc.key)
    t.equal(stat.metaData['content-type'], 'application/octet-stream', 'the object is labelled octet-stream, not image/jpeg or text/html')
    t.ok((await readObject(stack.s3, stack.config.s3.bucket, doc.key)).equals(bytes), 'bytes kept exactly')
    // The admin panel's photo handler (admin/routes/sessions.ts -> openMedia) re-sniffs the object.
    const served = await openMedia(stack.s3, stack.config.s3.bucket, doc.key, String(doc.filename))
    served.body.destroy()
    t.equal(served.type, 'application/octet-stream')
    t.match(served.disposition, /^attachment; /, 'served as a download, never inline')
  }
})

t.test('ids at 128 characters are accepted, at 129 refused (and a 129-character DSN is 403)', async (t) => {
  const id128 = 'S'.repeat(120) + randomId().slice(0, 8)
  t.equal(id128.length, 128)
  const m128 = 'M'.repeat(128)
  t.equal((await send(stack.port, { path: p(id128).session, body: FIXTURES.sessionRdtoolkit })).status, 201)
  t.equal((await send(stack.port, { path: p(id128).logs, body: FIXTURES.logsRdtoolkit })).status, 201)
  t.equal((await send(stack.port, { path: p(id128).media(m128), headers: [['Content-Type', 'image/jpeg']], body: fakeJpeg(1000) })).status, 201)
  t.equal((await storedSession(id128)).session_id, id128)
  await storedBatch(id128)
  t.equal((await storedMedia(id128, m128)).key, `${ws}/${id128}/${m128}`)
  t.ok(await stack.queues.sessions.getJob(jobIds.session(ws, id128)), 'the job id holds a 128-character id')

  const id129 = id128 + 'x'
  for (const path of [p(id129).session, p(id129).logs, p(id128).media(m128 + 'x'), p(id129).media('raw')]) {
    const res = await send(stack.port, { path, body: FIXTURES.sessionRdtoolkit })
    t.equal(res.status, 400, path.slice(-40))
    t.match(JSON.parse(res.body), { error: 'invalid_id' })
  }
  t.same(await nothingFor(id129), [])
  const dsn129 = `/ingest/${'r'.repeat(129)}/test_session/abc/`
  t.equal((await send(stack.port, { path: dsn129, body: '{}' })).status, 403)
})

t.test('malformed URLs are refused without echoing the DSN', async (t) => {
  for (const path of [`/ingest/${token}/test_session/%zz/`, `/ingest/${token}/test_session/${'A'.repeat(2000)}/`, `/ingest/${token}/test_session/%E0%A4%A/logs`]) {
    const res = await send(stack.port, { path, body: '{}' })
    t.ok(res.status === 400 || res.status === 414, `${res.status}`)
    t.notOk(res.body.includes(token), 'the token is not in the answer')
  }
})

t.test('non-finite numbers and other literal oddities', async (t) => {
  const id = randomId('num-')
  const body = '{"state":"QUEUED","big":1e999,"neg":-1e999,"huge":123456789012345678901234567890,"tiny":1e-400,"mz":-0}'
  t.equal((await send(stack.port, { path: p(id).session, body })).status, 201)
  const doc = await storedSession(id)
  t.match(doc.extra, { big: 'Infinity', neg: '-Infinity', huge: 1.2345678901234568e29, tiny: 0 })
  t.match(doc.storage_notes, [{ path: '/big', rule: 'non_finite_number_as_string' }, { path: '/neg', rule: 'non_finite_number_as_string' }])
})

t.test('after every case: nothing crashed, stuck, failed, or touched another workspace', async (t) => {
  t.equal((await send(stack.port, { method: 'GET', path: '/healthz' })).status, 200)
  const probe = await knownGoodRoundTrip(stack)
  t.same(probe.statuses, [201, 201, 201])
  t.ok(probe.stored, 'a known-good upload is still stored')
  const report = await drain(stack, 120_000)
  t.same(report.pending, { sessions: 0, logs: 0, media: 0 }, 'queues drained')
  t.same(report.failed, [], 'no failed job')
  t.same(await snapshotWorkspace(stack, stack.victim.workspaceId), victimBefore, 'the other workspace is byte for byte the same')
  t.same(await leftoverSpools(stack), [])
  t.same(errorLines(stack.gatewayLines).map((l) => l.msg), [], 'the gateway logged no error')
  t.same(errorLines(stack.lines).map((l) => `${l.msg} ${String(l.reason ?? '')}`), [], 'the worker logged no error')
})
