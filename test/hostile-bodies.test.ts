// Explicit hostile request bodies (odd keys, deep nesting, huge arrays, NUL, invalid UTF-8, odd
// numbers), each sent over real HTTP to a real gateway with a real worker behind it. Every case
// checks the status AND what is stored; the last test checks that nothing crashed, stuck or
// touched another workspace. HTTP framing and headers: hostile-http.test.ts.
import t from 'tap'
import type { Document } from 'mongodb'
import { decodeKey } from '../shared/json-storage.ts'
import { FIXTURES, randomId, send, sha256 } from './helpers/hostile.ts'
import { startHostileCases } from './helpers/hostile-cases.ts'

const {
  stack,
  ws,
  maxJson: MAX_JSON,
  p,
  col,
  storedSession,
  storedBatch,
  storedLogs,
  nothingFor,
  checkAfterEveryCase,
} = await startHostileCases(t)

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
  t.same(
    (doc.configuration as Document).flags,
    Object.assign(Object.create(null), { '%24where': 'TRUE', 'a%2Eb': 'FALSE', ['__proto__']: 'TRUE' }),
  )
  t.same(
    Object.keys((doc.result as Document).results as object)
      .map(decodeKey)
      .sort(),
    ['$ne', 'constructor'],
  )

  const logsBody =
    '{"entries":[{"timestamp":"2021-01-25T11:02:41.118+00:00","tag":"t","message":"m","json":{"$where":"1","a.b":2,"__proto__":3,"constructor":4}}]}'
  t.equal((await send(stack.port, { path: p(id).logs, body: logsBody })).status, 201)
  await storedLogs(id, logsBody)
  const entry = (await col('test_session_logs').findOne({ workspace_id: ws, session_id: id }))!
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
    t.notOk(
      (doc.validation.errors as { path: string }[]).some((e) => e.path === 'storage_fallback'),
      'the normalised document went in, not the fallback',
    )
    const notes = doc.storage_notes as { path: string; rule: string }[]
    t.ok(
      notes.some((n) => n.path === '/deep_array/0' && n.rule === 'nested_array_as_json'),
      'an array directly in an array becomes JSON text',
    )
    t.ok(
      notes.some((n) => n.path.startsWith('/metrics/data/a/') && n.rule === 'too_deep_as_json'),
      'an object past level 32 becomes JSON text',
    )
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
    await storedLogs(id, logs)
    t.equal(await col('test_session_logs').countDocuments({ workspace_id: ws, session_id: id }), 2, 'both deep entries')
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
  t.ok(
    (doc.validation.errors as { path: string }[]).some((e) => e.path === '/metrics/data'),
    'and flagged where the schema wants a map',
  )

  const bigLogs = JSON.stringify({ entries: [{ timestamp: '2021-01-25T11:02:41Z', tag: 't', message: 'm', json: { values: big } }] })
  t.equal((await send(stack.port, { path: p(id).logs, body: bigLogs })).status, 201)
  await storedLogs(id, bigLogs)
  const entry = (await col('test_session_logs').findOne({ workspace_id: ws, session_id: id }))!
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
  t.equal(
    (await send(stack.port, { path: p(randomId('nulraw-')).session, body: inString })).status,
    400,
    'nor is an unescaped NUL in a string',
  )
})

t.test('invalid UTF-8: accepted, hashed over the exact bytes, flagged; a byte-order mark is ignored', async (t) => {
  const id = randomId('utf8-')
  // 0xff, an overlong '/', a CESU-8 surrogate, a truncated 3-byte sequence.
  const bytes = Buffer.concat([
    Buffer.from('{"state":"QUEUED","note":"a'),
    Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xe2, 0x82]),
    Buffer.from('z"}'),
  ])
  const res = await send(stack.port, { path: p(id).session, body: bytes })
  t.equal(res.status, 201)
  const doc = await storedSession(id)
  t.equal(doc.raw_sha256, sha256(bytes), 'raw_sha256 is over the bytes received')
  t.match(doc.raw_body, /^\{"state":"QUEUED","note":"a\ufffd+z"\}$/, 'raw_body has U+FFFD where the invalid bytes were')
  const flagged = (d: Document) =>
    (d.validation.errors as { path: string; message: string }[]).some((e) => e.path === 'raw_body' && /not valid UTF-8/.test(e.message))
  t.ok(flagged(doc), 'and the record says so')
  t.match((doc.extra as Document).note, /^a\ufffd+z$/)

  t.equal(
    (
      await send(stack.port, {
        path: p(id).logs,
        body: Buffer.concat([Buffer.from('{"entries":[{"tag":"'), Buffer.from([0xfe]), Buffer.from('"}]}')]),
      })
    ).status,
    201,
  )
  const batch = await storedBatch(id)
  t.ok(flagged(batch), 'the logs batch too')

  const valid = randomId('utf8ok-')
  t.equal((await send(stack.port, { path: p(valid).session, body: FIXTURES.sessionRdtoolkit })).status, 201)
  t.notOk(
    ((await storedSession(valid)).validation.errors as { path: string }[]).some((e) => e.path === 'raw_body'),
    'valid UTF-8 is not flagged',
  )

  const bom = randomId('bom-')
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(FIXTURES.sessionRdtoolkit)])
  t.equal(
    (await send(stack.port, { path: p(bom).session, body: withBom })).status,
    201,
    'a leading byte-order mark is not a reason to refuse',
  )
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
  const third = Buffer.concat([
    Buffer.from('{"state":"QUEUED","x":"'),
    Buffer.alloc(Math.floor(MAX_JSON / 3) - 40, 0xff),
    Buffer.from('"}'),
  ])
  t.equal((await send(stack.port, { path: p(within).session, body: third })).status, 201)
  const thirdDoc = await storedSession(within)
  t.equal(thirdDoc.raw_sha256, sha256(third))
  t.equal((thirdDoc.raw_body as string).length, third.length, 'one character in raw_body per byte received')
  t.ok(flagged(thirdDoc), 'flagged')
  t.equal((await send(stack.port, { path: p(within).logs, body: third })).status, 201, 'the same body as logs')
  t.ok(flagged(await storedBatch(within)))
})

t.test('non-finite numbers and other literal oddities', async (t) => {
  const id = randomId('num-')
  const body = '{"state":"QUEUED","big":1e999,"neg":-1e999,"huge":123456789012345678901234567890,"tiny":1e-400,"mz":-0}'
  t.equal((await send(stack.port, { path: p(id).session, body })).status, 201)
  const doc = await storedSession(id)
  t.match(doc.extra, { big: 'Infinity', neg: '-Infinity', huge: 1.2345678901234568e29, tiny: 0 })
  t.match(doc.storage_notes, [
    { path: '/big', rule: 'non_finite_number_as_string' },
    { path: '/neg', rule: 'non_finite_number_as_string' },
  ])
})

checkAfterEveryCase()
